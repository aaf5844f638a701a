"""DMARC aggregate reports (RFC 7489 rua): parse.py reads one, cli.py is `flask dmarc parse`."""
