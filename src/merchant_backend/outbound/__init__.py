"""Notifications we send: signed messages to merchants' and the operator's destinations."""
