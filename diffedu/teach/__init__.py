"""The teaching layer: what the lessons call (plots, widgets, answer checkers, cached models).

It imports the maths core (``diffedu``), never ``diffedu.course``. Shared pieces live in
:mod:`~diffedu.teach.plots`, :mod:`~diffedu.teach.widgets`, :mod:`~diffedu.teach.checks` and
:mod:`~diffedu.teach.fallbacks`; each lesson ``lessons/NN_topic.ipynb`` has one module
``diffedu.teach.topic``, which it imports as ``lesson``.
"""
