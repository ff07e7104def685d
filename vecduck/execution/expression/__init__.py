"""chromadb's `chromadb.execution.expression` import path: the Search API's expression classes.

`from vecduck.execution.expression import Search, K, Knn, GroupBy, MinK` works as with
chromadb; the classes live in `vecduck.api.expressions`.
"""

from vecduck.api.expressions import *  # noqa: F403
from vecduck.api.expressions import __all__  # noqa: F401
