"""Which Ceph a dev cluster runs: the host's own packages (Pacific 16.2 on bookworm), or
Debian's current Ceph (Tentacle 20.2) in a forky chroot built by dev/tentacle-root.sh.

A chrooted cluster's folder is bind-mounted into the chroot at the very same path, so every
path in its ceph.conf, keyrings, logs and sockets means the same file on both sides: the
host's tools read the logs, the chroot's binaries run the daemons and the CLI.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
RELEASES = ('pacific', 'tentacle')
DEFAULT_RELEASE = 'pacific'
# The mounts a chroot's daemons need (cryptsetup's postinst and ceph-osd among others).
SYSTEM_MOUNTS = ('proc', 'sys', 'dev', 'dev/pts')
# What a command in the chroot may keep of the caller's environment.
CHROOT_ENV = ('CEPH_CONF', 'CEPH_ARGS', 'HOME', 'LANG', 'LC_ALL', 'TERM', 'TZ')
CHROOT_PATH = '/usr/sbin:/usr/bin:/sbin:/bin'


class ReleaseError(RuntimeError):
    """The release cannot be used (its root could not be built or mounted)."""


def _mounted() -> List[str]:
    """Mount points of this machine, as /proc/self/mountinfo spells them."""
    with open('/proc/self/mountinfo') as f:
        return [line.split()[4].replace('\\040', ' ') for line in f if line.strip()]


def _same_dir(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _run(cmd: Sequence[str], timeout: float = 60) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ReleaseError(f'{" ".join(cmd)} failed ({proc.returncode}): '
                           f'{proc.stderr.strip() or proc.stdout.strip()}')


class Release:
    """The host's Ceph: commands run as they are."""

    name = DEFAULT_RELEASE
    root: Optional[Path] = None
    # The daemons' ports (mgrs and OSDs bind the first free one), half of Ceph's default
    # range each: a daemon of one release dialling an address a daemon of the other took
    # over crashes a Pacific mgr (Pacific asserts on Tentacle's key type).
    ports: Tuple[int, int] = (6800, 7049)

    def prepare(self) -> None:
        """Make the release usable (install or build what it needs)."""

    def attach(self, folder: Path) -> None:
        """Make a cluster folder visible where the daemons run."""

    def detach(self, folder: Path) -> None:
        """Undo attach(), once the folder's daemons are gone."""

    def command(self, argv: Sequence[str]) -> List[str]:
        return [str(a) for a in argv]

    def env(self, base: Dict[str, str]) -> Dict[str, str]:
        return dict(base)

    def host_path(self, path: str) -> Path:
        """Where a path as the daemons see it lies on the host."""
        return Path(path)

    @property
    def stock_mgr_dir(self) -> str:
        """The release's own mgr modules, as the daemons see the folder."""
        return '/usr/share/ceph/mgr'


class ChrootRelease(Release):
    """A release whose binaries live in a chroot of their own."""

    ports = (7050, 7300)

    def __init__(self, name: str, root: Path, builder: Path) -> None:
        self.name = name
        self.root = root
        self.chroot: Path = root
        self._builder = builder

    def prepare(self) -> None:
        if not (self.chroot / '.bgtasks-root-ready').exists():
            proc = subprocess.run(['bash', str(self._builder), str(self.chroot)],
                                  stdin=subprocess.DEVNULL, timeout=1800)
            if proc.returncode != 0:
                raise ReleaseError(f'building the {self.name} root {self.chroot} failed '
                                   f'(exit {proc.returncode}); see its output above')
        mounted = set(_mounted())
        for sub in SYSTEM_MOUNTS:
            target = self.chroot / sub
            if str(target) not in mounted:
                target.mkdir(parents=True, exist_ok=True)
                _run(['mount', '--bind', f'/{sub}', str(target)])

    def _inside(self, folder: Path) -> Path:
        return self.chroot / str(folder.resolve()).lstrip('/')

    def attach(self, folder: Path) -> None:
        self.prepare()
        target = self._inside(folder)
        if str(target) in _mounted():
            if _same_dir(target, folder):
                return
            # A mount of an earlier folder of that name (removed while still mounted).
            _run(['umount', '-l', str(target)])
        target.mkdir(parents=True, exist_ok=True)
        _run(['mount', '--bind', str(folder.resolve()), str(target)])

    def detach(self, folder: Path) -> None:
        target = self._inside(folder)
        mounted = _mounted()
        if str(target) in mounted:
            _run(['umount', '-l', str(target)])
        try:
            # Only the empty mount point is left; its parents may be other clusters'.
            target.rmdir()
        except OSError:
            pass
        root = str(self.chroot)
        # The last cluster gone, the root's system mounts go too.
        others = [m for m in _mounted() if m.startswith(root + '/')
                  and m[len(root) + 1:] not in SYSTEM_MOUNTS]
        if not others:
            for sub in reversed(SYSTEM_MOUNTS):
                if str(self.chroot / sub) in _mounted():
                    _run(['umount', '-l', str(self.chroot / sub)])

    def command(self, argv: Sequence[str]) -> List[str]:
        return ['chroot', str(self.chroot), *[str(a) for a in argv]]

    def env(self, base: Dict[str, str]) -> Dict[str, str]:
        # Host variables (PYTHONPATH, LD_LIBRARY_PATH, a venv's PATH) would mislead the
        # chroot's own Python and libraries.
        env = {k: v for k, v in base.items() if k in CHROOT_ENV}
        env['PATH'] = CHROOT_PATH
        return env

    def host_path(self, path: str) -> Path:
        return self.chroot / path.lstrip('/')


def tentacle_root() -> Path:
    return Path(os.environ.get('BGTASKS_TENTACLE_ROOT') or REPO / '.dev' / 'tentacle-root')


def release(name: Optional[str] = None) -> Release:
    """The release called `name` (default: $BGTASKS_RELEASE, else pacific)."""
    name = name or os.environ.get('BGTASKS_RELEASE') or DEFAULT_RELEASE
    if name == 'pacific':
        return Release()
    if name == 'tentacle':
        return ChrootRelease('tentacle', tentacle_root(), REPO / 'dev' / 'tentacle-root.sh')
    raise ReleaseError(f'unknown release {name!r}; one of {", ".join(RELEASES)}')
