"""Exception types. Each message says which file/row is wrong and what to do."""


class SkillcircleError(Exception):
    """Base class: the CLI prints the message as one line and exits non-zero."""


class InputDataError(SkillcircleError):
    """A user-supplied file (facilities, villages, origins, registry) is invalid.

    ``problems`` holds every ``(where, what)`` found (the message lists the first
    few), so that a web upload can return all of its bad rows.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems: list[tuple[str, str]] = problems or []


class FacilityDataError(InputDataError):
    """A facilities file or registry row is invalid."""


class TooManyRowsError(FacilityDataError):
    """A registry has more rows than one upload may hold."""


class NetworkError(SkillcircleError):
    """A road network cannot be built or loaded."""


class OutsideRegionError(NetworkError):
    """An OSM file does not overlap the region it was to be clipped to."""


class SettingsError(SkillcircleError):
    """An unknown mode/layer or an invalid parameter value."""


class GeocoderError(FacilityDataError):
    """An online geocoder cannot be used (bad key, quota spent, no answer); nothing is written."""
