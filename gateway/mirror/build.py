"""Builds the configured DirectorySource from the `[mirror]` section."""

from __future__ import annotations

from gateway.config import Config
from gateway.mirror.adapters.file_source import FileDirectory
from gateway.mirror.adapters.lifeline_api import LifelineDirectory
from gateway.mirror.http import HttpClient
from gateway.mirror.source import DirectorySource


def build_source(config: Config) -> DirectorySource | None:
    """The adapter `[mirror] source` names, or None for "none"."""
    m = config.mirror
    realm = config.cloud.realm
    if m.source == "none":
        return None
    if m.source == "file":
        assert m.file is not None  # checked by MirrorConfig
        return FileDirectory(m.file, realm)
    http = HttpClient(timeout_s=m.timeout_s, max_bytes=m.max_bytes, ca_file=m.ca_file)
    url = m.url or ""
    if m.source == "lifeline":
        assert m.token is not None
        return LifelineDirectory(
            url=url, token=m.token.get_secret_value(), realm=realm, http=http, page_size=m.page_size
        )
    if m.source == "freepbx":
        from gateway.mirror.adapters.freepbx import FreePbxDirectory

        assert m.client_id is not None and m.client_secret is not None
        return FreePbxDirectory(
            url=url, client_id=m.client_id, client_secret=m.client_secret.get_secret_value(), realm=realm, http=http
        )
    if m.source == "kazoo":
        from gateway.mirror.adapters.kazoo import KazooDirectory

        assert m.account_id is not None and m.api_key is not None
        return KazooDirectory(
            url=url, account_id=m.account_id, api_key=m.api_key.get_secret_value(), realm=realm, http=http
        )
    from gateway.mirror.adapters.wazo import WazoDirectory

    assert m.token is not None
    return WazoDirectory(url=url, token=m.token.get_secret_value(), realm=realm, http=http)
