"""Deployment: the client (keys, encryption, decryption) and the server (evaluation keys only)."""

from resnet_fhe.runtime.client import Client
from resnet_fhe.runtime.keystore import KeyStoreError
from resnet_fhe.runtime.server import Server

__all__ = ["Client", "KeyStoreError", "Server"]
