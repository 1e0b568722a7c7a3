#!/usr/bin/env python3
"""Count shipped, live and wasted file bytes of an image archive, independently of strata.

Reads an OCI image layout or docker-archive tar with Python's tarfile module,
applies each layer's entries with the OCI whiteout rules (.wh.NAME deletes
NAME and everything under it, .wh..wh..opq hides what lower layers had in its
directory, a non-directory replaces a directory), and prints one JSON object:
{"shipped": N, "live": N, "wasted": N}. Hard links within a layer share one
copy, so each copy counts once.
"""

import io
import json
import sys
import tarfile


def layer_blobs(archive):
    """Return the layer tar files of the first image, bottom first, as bytes."""
    names = {m.name.lstrip("./"): m for m in archive.getmembers()}

    def read(name):
        member = names[name.lstrip("./")]
        while member.issym() or member.islnk():
            target = member.linkname
            if member.issym():
                base = member.name.lstrip("./").rsplit("/", 1)[0] if "/" in member.name else ""
                parts = []
                for part in (base + "/" + target).split("/"):
                    if part == "..":
                        parts.pop()
                    elif part and part != ".":
                        parts.append(part)
                target = "/".join(parts)
            member = names[target.lstrip("./")]
        return archive.extractfile(member).read()

    if "manifest.json" in names:
        manifest = json.loads(read("manifest.json"))[0]
        return [read(path) for path in manifest["Layers"]]
    index = json.loads(read("index.json"))
    manifest = json.loads(read("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
    return [read("blobs/sha256/" + layer["digest"].split(":")[1]) for layer in manifest["layers"]]


def open_layer(data):
    """Open a layer tar, uncompressed or gzip; zstd is read through the zstd tool."""
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import subprocess
        data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")


def norm(name):
    return "/".join(p for p in name.split("/") if p and p != ".")


def main():
    archive = tarfile.open(sys.argv[1], mode="r:*")
    tree = {}      # path -> copy id (None for non-files), "dir" marker for directories
    kinds = {}     # path -> "dir" or "other"
    sizes = {}     # copy id -> bytes
    shipped = 0
    for number, blob in enumerate(layer_blobs(archive)):
        layer = open_layer(blob)
        members = layer.getmembers()
        copies = {}

        def drop(prefix, keep_self):
            for path in [p for p in tree if p == prefix or p.startswith(prefix + "/")]:
                if keep_self and path == prefix:
                    continue
                del tree[path]
                kinds.pop(path, None)

        for member in members:
            path = norm(member.name)
            base = path.rsplit("/", 1)[-1]
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            if base == ".wh..wh..opq":
                drop(parent, keep_self=True)
            elif base.startswith(".wh..wh."):
                continue
            elif base.startswith(".wh."):
                drop((parent + "/" if parent else "") + base[4:], keep_self=False)
        for member in members:
            path = norm(member.name)
            base = path.rsplit("/", 1)[-1]
            if not path or base.startswith(".wh."):
                continue
            if member.isdir():
                if kinds.get(path) != "dir":
                    drop(path, keep_self=False)
                tree[path] = None
                kinds[path] = "dir"
                continue
            drop(path, keep_self=False)
            if member.islnk():
                target = norm(member.linkname)
                copy = copies.get(target, tree.get(target))
            elif member.isreg():
                copy = (number, path)
                copies[path] = copy
                sizes[copy] = member.size
                shipped += member.size
            else:
                copy = None
            tree[path] = copy
            kinds[path] = "other"
    live = sum(sizes[c] for c in {c for c in tree.values() if c is not None})
    print(json.dumps({"shipped": shipped, "live": live, "wasted": shipped - live}))


if __name__ == "__main__":
    main()
