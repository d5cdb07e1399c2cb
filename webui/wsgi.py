"""The web process (gunicorn webui.wsgi): concurrency comes from its workers and threads, one request each.

BLAS libraries (numpy's and scipy's OpenBLAS) start a thread per core for every product. In a web
worker that answers several requests at once beside the inference engine, those threads wait for cores
that are busy, and a 0.05 ms product of the "none of these" detector took milliseconds: measured with
`bench.api_pipeline`'s load, 15 % of the web processes' CPU samples, and 65 vs 105 predictions/s with
one BLAS thread. So the web tier runs BLAS on the calling thread; set the variables to override. The
Celery workers keep the default: their large products (fitting, the audit) run one at a time.
"""

import os

# Before anything imports numpy: OpenBLAS reads these once, when it loads.
for _variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from django.core.wsgi import get_wsgi_application  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webui.settings")
application = get_wsgi_application()
