"""Template filters of the back office's pages: identifiers in words, readable details."""

from __future__ import annotations

from typing import Any

from django import template

from vault.web import words

register = template.Library()


@register.filter
def purpose(value: Any) -> str:
    return words.in_words(words.PURPOSES, value)


@register.filter
def role(value: Any) -> str:
    return words.in_words(words.ROLES, value)


@register.filter
def roles(value: Any) -> str:
    return words.roles_in_words(value)


@register.filter
def state(value: Any) -> str:
    return words.in_words(words.STATES, value)


@register.filter
def hold_kind(value: Any) -> str:
    return words.in_words(words.HOLDS, value)


@register.filter
def result(value: Any) -> str:
    return words.in_words(words.RESULTS, value)


@register.filter
def decision(value: Any) -> str:
    return words.in_words(words.DECISIONS, value)


@register.filter
def detail(value: Any) -> str:
    return words.detail_in_words(value)


@register.filter
def byte_count(value: Any) -> str:
    return words.bytes_in_words(value)


@register.filter
def target(value: Any) -> str:
    return words.target_in_words(value)
