"""The back-office commands (`bodycam vault ...`), one module per command group; the
parser that names them is `vault.backoffice_cli`."""
