#!/bin/bash
# Keygen timings, run alone: three rounds of the previous native code, the new native code and the wheel,
# each store removed before its run. PREVIOUS and NEW are checkouts with the native extension built
# (`make native`), VENV the environment that has the wheel; STORE a scratch folder (about 9 GB).
#   PREVIOUS=/path/to/worktree-of-5c8fde5 NEW=$PWD VENV=$PWD/.venv STORE=/tmp/kg-store \
#     bash bench/results/native-2026-12-02/keygen_rounds.sh
set -euo pipefail
: "${PREVIOUS:?a checkout of the previous commit}" "${NEW:?this checkout}" "${VENV:?the .venv}" "${STORE:?a scratch folder}"
R=$NEW/bench/results/native-2026-12-02
out=$R/keygen-alternating.log
echo "# rounds of: previous native code (commit 5c8fde5), new native code, wheel; each:" > "$out"
echo "#   rm -rf STORE; sync; OMP_NUM_THREADS=2 resnet-fhe keygen --plan circuits/resnet20-default-128.json --store STORE --backend native|openfhe --json keygen-ROUND-VARIANT.json" >> "$out"
echo "# started $(date -u +'%Y-%m-%d %H:%M') UTC, alone; $(grep -m1 'model name' /proc/cpuinfo)" >> "$out"
for round in 1 2 3; do
  for variant in previous new wheel; do
    rm -rf "$STORE"; sync; sleep 2
    case $variant in
      previous) tree=$PREVIOUS; backend=native;;
      new) tree=$NEW; backend=native;;
      wheel) tree=$NEW; backend=openfhe;;
    esac
    # run from the tree so that its resnet_fhe package (and extension) is the one imported
    (cd "$tree" && OMP_NUM_THREADS=2 "$VENV/bin/python" -c 'from resnet_fhe.cli import main; main()' keygen \
      --plan "$NEW/circuits/resnet20-default-128.json" --store "$STORE" --backend $backend \
      --json "$R/keygen-$round-$variant.json" 2>&1) | grep "keygen:" | sed "s/^/$variant /" >> "$out"
  done
done
rm -rf "$STORE"
