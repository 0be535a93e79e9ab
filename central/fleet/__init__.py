"""The fleet of classroom gateways as central sees it: identities (claim tokens exchanged for
broker credentials), configuration published down to each gateway, and gateway health."""
