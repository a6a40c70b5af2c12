"""The card gallery: every card kind and state, built from the inputs in tests/golden/cards,
rendered with the adaptivecards renderer and Teams' host configs in headless Chromium.

    python -m tools.gallery            (what `make gallery` does: PNGs into docs/cards/)
"""
