"""Tests of diffedu.teach. A package, so a test_<topic>.py here may share its basename with a
core test in tests/ (tests/teach/test_fokker_planck.py next to tests/test_fokker_planck.py)."""
