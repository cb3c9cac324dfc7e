"""The status page: HTML for installers and office IT on the network API's HTTPS site, under /ui/.

Login with the admin password (gateway.hw.admin), a server-side session behind a cookie, a CSRF token on
every POST; the page shows `lifeline status` and polls /ui/status.json to update itself in place.
"""
