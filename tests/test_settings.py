"""geo/settings.py: the metric CRS is chosen from the data unless it is set."""

from __future__ import annotations

import pytest

from geo._errors import SettingsError
from geo.settings import Settings


def test_metric_crs_defaults_to_the_zone_of_the_data():
    settings = Settings()
    assert settings.metric_crs is None
    assert settings.metric_crs_for([24.90, 24.98], [60.15, 60.21]) == "EPSG:32635"
    assert settings.metric_crs_for([120.70, 120.80], [30.70, 30.80]) == "EPSG:32651"


def test_an_explicit_metric_crs_wins():
    settings = Settings(metric_crs="EPSG:3067")  # ETRS-TM35FIN, Finland's national grid
    assert settings.metric_crs_for([120.7], [30.7]) == "EPSG:3067"
    assert settings.with_(metric_crs=None).metric_crs_for([120.7], [30.7]) == "EPSG:32651"


@pytest.mark.parametrize(
    ("crs", "needle"),
    [("EPSG:4326", "not a projected CRS in metres"), ("no such crs", "not a CRS pyproj knows")],
)
def test_a_metric_crs_must_be_projected_in_metres(crs, needle):
    with pytest.raises(SettingsError, match=needle):
        Settings(metric_crs=crs)
