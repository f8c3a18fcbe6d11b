"""The back office in the browser: server-rendered pages over the service layer.

Sign-in with lock-out, the catalog and recording page, viewing in pairs with a
watermarked stream decrypted in memory, the requests register (each request opens and
closes its hold), the audit page, cameras and officers, and the officer's shift report.
Rules live in the services (`vault.*.services`, `vault.web.*` modules other than
`views`); the views only call them.
"""
