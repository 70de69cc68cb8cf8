# bench/settle.sh — sourced by the benchmarks.  Deleting files slows file
# creation on ext4 without a journal (this VM) for about a minute afterwards:
# the inode allocator skips every inode freed in the last 60 s, scanning past
# each, so a benchmark that starts right after deleting thousands of files
# measures its own clean-up.  Benchmarks delete through bench_delete, which
# stamps the time, and call bench_settle before measuring, which waits until
# 65 s after the last stamped deletion.
BENCH_STAMP="${BENCH_RUN:-/tmp/hato-bench}/.last-delete"

bench_delete() {  # paths...
    rm -rf "$@"
    sync
    mkdir -p "$(dirname "$BENCH_STAMP")"
    date +%s > "$BENCH_STAMP"
}

bench_settle() {
    local last now left
    [ -r "$BENCH_STAMP" ] || return 0
    last=$(cat "$BENCH_STAMP"); now=$(date +%s); left=$(( last + 65 - now ))
    if [ "$left" -gt 0 ]; then
        echo "[bench] files were deleted $(( now - last )) s ago: waiting $left s (ext4 without a journal)" >&2
        sleep "$left"
    fi
}
