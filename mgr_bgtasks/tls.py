"""The server's certificate: the operator's, or one made once with the openssl tool
and kept in the store, so every mgr serves the same one. No PyO3-backed package may
be imported here (they break the dashboard beside us): the openssl command it is."""
import os
import shutil
import subprocess
import tempfile
from typing import Optional, Tuple

from .store import Store

CRT_KEY = 'crt'
KEY_KEY = 'key'
HOW_TO_FIX = ('install the openssl command on the mgr hosts, or store a certificate: '
              'ceph config-key set mgr/bgtasks/crt -i cert.pem; '
              'ceph config-key set mgr/bgtasks/key -i key.pem')


class NoCertificate(Exception):
    pass


def certificate(store: Store, may_create: bool) -> Tuple[str, str]:
    """(certificate PEM, key PEM); makes and stores a self-signed pair if none is stored."""
    crt, key = store.get(CRT_KEY), store.get(KEY_KEY)
    if crt and key:
        return crt, key
    if not may_create:
        raise NoCertificate('no certificate stored yet')
    crt, key = _self_signed()
    store.put(CRT_KEY, crt)
    store.put(KEY_KEY, key)
    return crt, key


def _self_signed() -> Tuple[str, str]:
    openssl = shutil.which('openssl')
    if openssl is None:
        raise NoCertificate(f'no certificate is stored and openssl is missing: {HOW_TO_FIX}')
    with tempfile.TemporaryDirectory(prefix='bgtasks-tls-') as d:
        crt_path, key_path = os.path.join(d, 'crt'), os.path.join(d, 'key')
        subprocess.run([openssl, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                        '-days', '3650', '-subj', '/O=Ceph/CN=bgtasks',
                        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
                        '-keyout', key_path, '-out', crt_path],
                       check=True, capture_output=True, timeout=60)
        with open(crt_path) as c, open(key_path) as k:
            return c.read(), k.read()


def write_pair(crt: str, key: str, folder: Optional[str] = None) -> Tuple[str, str]:
    """CherryPy's ssl adapter wants files: write them where only we can read."""
    d = folder or tempfile.mkdtemp(prefix='bgtasks-tls-')
    os.chmod(d, 0o700)
    paths = os.path.join(d, 'crt.pem'), os.path.join(d, 'key.pem')
    for path, text in zip(paths, (crt, key)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(text)
    return paths
