"""Pair mode: two boxes share one virtual address, moved by VRRP (keepalived), checked by Lifeline."""
