"""The web tab's files: `index.html` rendered with jinja2, everything else served as is
from the frontend folder (installed inside the module; no CDN, no build step)."""
import mimetypes
import os
from typing import Dict, Optional, Tuple

import jinja2

TYPES = {'.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
         '.svg': 'image/svg+xml', '.html': 'text/html', '.json': 'application/json',
         '.png': 'image/png', '.ico': 'image/x-icon', '.woff2': 'font/woff2'}


def default_folder() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, 'frontend')          # share/ceph/mgr/bgtasks/frontend
    return installed if os.path.isdir(installed) else os.path.join(here, '..', 'frontend')


class Frontend:
    def __init__(self, folder: Optional[str] = None) -> None:
        self.folder = os.path.realpath(folder or default_folder())
        self._env = jinja2.Environment(loader=jinja2.FileSystemLoader(self.folder),
                                       autoescape=True)
        self._cache: Dict[str, Tuple[bytes, str]] = {}

    def index(self) -> str:
        if not os.path.exists(os.path.join(self.folder, 'index.html')):
            return '<!doctype html><title>bgtasks</title><p>The web tab is not installed.'
        return self._env.get_template('index.html').render()

    def static(self, path: str) -> Optional[Tuple[bytes, str]]:
        """(content, content type) of a file below the folder, or None."""
        # Keyed by the normalised path, not the one asked for: a client can spell one file
        # in endless ways ('a/../app.js', 'b/../app.js'...), and each must not cost a copy.
        # Lexical, so a cached file costs no system call.
        key = os.path.normpath(path.lstrip('/'))
        if key in self._cache:
            return self._cache[key]
        full = os.path.realpath(os.path.join(self.folder, key))
        if not full.startswith(self.folder + os.sep) or not os.path.isfile(full):
            return None
        ext = os.path.splitext(full)[1].lower()
        ctype = TYPES.get(ext) or mimetypes.guess_type(full)[0] or 'application/octet-stream'
        if ctype.startswith('text/') or ctype.endswith(('json', 'javascript', 'svg+xml')):
            ctype += '; charset=utf-8'
        with open(full, 'rb') as f:
            found = (f.read(), ctype)
        self._cache[key] = found      # files are installed, not edited in place
        return found
