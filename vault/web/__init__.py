"""The back office in the browser: server-rendered pages over the service layer.

The pages (`views/`, one module per section of the menu), their templates, translations
and static files, the menu's words, the site the views run in and the server. Rules live
in the services and selectors of the back office's apps (`vault.catalog`,
`vault.casework`, `vault.reports`, `vault.signin`, `vault.viewing`, ...); the views only
call them.
"""
