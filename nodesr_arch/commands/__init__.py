"""The ``nodesr`` commands, one module each with a ``main(argv)``, and the reporting code they share.

Library code (the API, inference, the archs, data and models) lives outside this package and never imports it.
"""
