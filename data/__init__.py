"""The bundled region pack (Jiaxing, 330400), installed as the package ``skillcircle_data``.

Data only: see README.md here and ``geo/region.py``. This file makes the folder a
package so that :mod:`importlib.resources` finds it in a wheel install.
"""
