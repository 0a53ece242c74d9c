"""Exception types. Each message says which file/row is wrong and what to do."""


class SkillcircleError(Exception):
    """Base class: the CLI prints the message as one line and exits non-zero."""


class InputDataError(SkillcircleError):
    """A user-supplied file (facilities, villages, origins, registry) is invalid."""


class FacilityDataError(InputDataError):
    """A facilities file or registry row is invalid."""


class NetworkError(SkillcircleError):
    """A road network cannot be built or loaded."""


class SettingsError(SkillcircleError):
    """An unknown mode/layer or an invalid parameter value."""
