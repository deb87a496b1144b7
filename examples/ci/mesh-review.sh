#!/bin/sh
# The sailplan steps of a mesh pull request, shared by the GitHub Actions and GitLab CI recipes.
#
#   sh ci/mesh-review.sh BASE_REF MESH_FILE OUT_DIR
#
# Run from the repository root (MESH_FILE is read at BASE_REF with `git show BASE_REF:MESH_FILE`,
# a path from the root). Writes OUT_DIR/check.json (`sailplan check --format json`) and
# OUT_DIR/comment.md, the pull-request comment: `sailplan diff` against BASE_REF with the mermaid
# graph, changes marked. Exit status: 0 when the mesh is valid, changed or not (a change is what a
# pull request is for); 2 when it is invalid (the comment lists the problems); 1 when sailplan or
# git failed.
set -u
if [ "$#" -ne 3 ]; then
  echo "usage: mesh-review.sh BASE_REF MESH_FILE OUT_DIR" >&2
  exit 2
fi
base_ref=$1
mesh=$2
out=$3
mkdir -p "$out" || exit 1
# The first line lets the posting step find and update its own comment instead of adding one.
marker="<!-- sailplan-review: $mesh -->"

status=0
sailplan check --format json "$mesh" >"$out/check.json" || status=$?
if [ "$status" -ne 0 ]; then
  {
    echo "$marker"
    echo "### sailplan check: \`$mesh\` is invalid"
    echo
    echo '```json'
    cat "$out/check.json"
    echo '```'
  } >"$out/comment.md"
  exit "$status"
fi

# A base that is not there (a shallow clone, a branch not fetched) must fail, not pass as "new".
if ! git rev-parse --verify --quiet "$base_ref^{commit}" >/dev/null; then
  echo "error: no commit $base_ref here: fetch the base branch (fetch-depth: 0, GIT_DEPTH: 0)" >&2
  exit 1
fi
if git cat-file -e "$base_ref:$mesh" 2>/dev/null; then
  status=0
  {
    echo "$marker"
    sailplan diff "git:$base_ref:$mesh" "$mesh" --format markdown --graph
  } >"$out/comment.md" || status=$?
  graph_flag=yes
  # diff exits 1 when the meshes differ: that is the expected case, not a failure.
  [ "$status" -le 1 ] || exit "$status"
else
  # A mesh file this pull request adds has nothing to compare with: show what it is.
  {
    echo "$marker"
    echo "### sailplan: new mesh \`$mesh\`"
    echo
    echo '```mermaid'
    sailplan graph "$mesh" || exit 1
    echo '```'
  } >"$out/comment.md" || exit 1
fi

# The whole review goes to the job log too, whatever the comment can hold.
cat "$out/comment.md"

# GitHub refuses comments over 65,535 characters; a mesh of hundreds of services gets there.
# Drop the graph first, then cut the end (the changes come first, the object tables last).
limit=60000
if [ "$(wc -c <"$out/comment.md")" -gt "$limit" ] && [ -n "${graph_flag:-}" ]; then
  { echo "$marker"; sailplan diff "git:$base_ref:$mesh" "$mesh" --format markdown; } >"$out/comment.md"
fi
if [ "$(wc -c <"$out/comment.md")" -gt "$limit" ]; then
  head -c "$limit" "$out/comment.md" >"$out/comment.trimmed"
  printf '\n\n… trimmed: the job log has the whole review.\n' >>"$out/comment.trimmed"
  mv "$out/comment.trimmed" "$out/comment.md"
fi
exit 0
