"""Training jobs (the ``train`` queue): learn a classifier from a user's examples (``docqueue train``)."""
