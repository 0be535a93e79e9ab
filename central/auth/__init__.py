"""Who may call central: bearer tokens with a role, teacher scopes, and an audit log."""
