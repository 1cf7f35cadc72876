"""Where data sets are kept on disk."""

import os

__all__ = ["DATA_HOME_ENV", "DEFAULT_DATA_HOME", "get_data_home"]

#: Environment variable naming the data folder, like scikit-learn's
#: ``SCIKIT_LEARN_DATA``.
DATA_HOME_ENV = "SKTRANSFER_DATA"

#: Used when neither an argument nor the environment variable names one.
DEFAULT_DATA_HOME = os.path.join("~", "sktransfer_data")


def get_data_home(data_home=None):
    """Return the folder where sktransfer keeps downloaded data sets.

    In order: the `data_home` argument, the ``SKTRANSFER_DATA`` environment
    variable, then ``~/sktransfer_data``. ``~`` is expanded. The folder is not
    created here; fetchers create it when they download into it.

    Parameters
    ----------
    data_home : str or os.PathLike or None, default=None
        Explicit folder; None falls back as described above.

    Returns
    -------
    str
        The data folder path.

    Examples
    --------
    >>> get_data_home("/tmp/my_data")
    '/tmp/my_data'
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or DEFAULT_DATA_HOME
    return os.path.expanduser(os.fspath(data_home))
