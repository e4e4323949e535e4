#!/usr/bin/env bash
# Wheels that benchmarks/device_check.sh needs on a GPU machine without a package index, for its Python (3.12 on
# the H200 image this was run on, which already holds torch, numpy, scipy, scikit-learn, h5py, matplotlib, tqdm and
# pytest): POT, and dvclive with the part of dvc it imports. Run here (where pip reaches an index) from the repository
# root; they land in .whl/ (ignore it in .git/info/exclude). On the GPU machine, before device_check.sh:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
set -euo pipefail
py=${PYTHON_VERSION:-3.12}
mkdir -p .whl
for pkg in pot==0.9.7.post1 dvclive==3.49.1 dvc==3.67.1 dvc-data==3.18.3 dvc-objects==5.2.0 dvc-render==1.0.2 \
           dvc-http==2.32.0 dvc-studio-client==0.23.0 scmrepo==3.6.2 dulwich==1.2.21 pygit2==1.21.0 cffi==2.0.0 \
           pycparser==3.0 gitpython==3.2.1 gitdb==4.0.12 smmap==5.0.3 funcy==2.1 ruamel.yaml==0.19.1 \
           configobj==5.0.9 diskcache==5.6.3 dpath==2.2.0 flatten-dict==0.5.0 flufl.lock==9.2.0 \
           platformdirs==4.14.8 pydot==4.0.1 pygtrie==2.6.2 sqltrie==0.11.3 voluptuous==0.16.0 wcwidth==0.7.0 \
           zc.lockfile==4.0 atpublic==9.0.0 dictdiffer==0.10.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$pkg"
done
du -sh .whl
