"""``python -m advtransfer``: the same as the ``advtransfer`` command."""

import sys

from .cli import main

sys.exit(main())
