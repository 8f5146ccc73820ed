"""docqueue workers: Celery tasks around resident transformer models. Never imported by the producer."""
