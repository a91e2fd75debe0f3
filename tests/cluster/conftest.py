"""The cluster test runs only when asked for (``-m cluster``: ``make cluster-test``, ``make chaos``).

It starts three RabbitMQ nodes and kills one, minutes of a 2-core machine, so
a plain ``pytest`` or ``make test`` run (which collects every directory)
leaves it out rather than relying on every caller to exclude the marker.
"""


def pytest_collection_modifyitems(config, items):
    if "cluster" in (config.option.markexpr or ""):
        return
    chosen, left_out = [], []
    for item in items:
        (left_out if item.get_closest_marker("cluster") else chosen).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = chosen
