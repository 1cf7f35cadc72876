"""ray.data map_batches with RayEmbedder actors, equal to one process."""

import numpy as np
import pytest

from sktransfer import PretrainedFeatureExtractor

ray = pytest.importorskip("ray")

# Starting Ray and its actor processes takes tens of seconds on 2 cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_map_batches_with_an_actor_pool_equals_one_process(ray_session, paths):
    from sktransfer.parallel import RayEmbedder

    est = PretrainedFeatureExtractor(model="tiny_convnet", weights=None, num_workers=0).fit(paths)
    ds = ray.data.from_items([{"path": p, "row": i} for i, p in enumerate(paths)])
    out = ds.map_batches(
        RayEmbedder,
        fn_constructor_args=(est,),
        batch_size=3,
        num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=2),
    ).to_pandas()
    out = out.sort_values("row")
    assert out["path"].tolist() == paths
    np.testing.assert_allclose(np.stack(out["embedding"]), est.transform(paths), rtol=1e-5, atol=1e-5)
