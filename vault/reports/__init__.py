"""The officer's shift reports and each camera's status, from the signed event logs."""
