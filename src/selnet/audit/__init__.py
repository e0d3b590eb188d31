"""Denials: audit log parsing, diagnosis of each AVC, fix search and verification, refpolicy
interfaces."""
