#!/usr/bin/env bash
# The package as a user installs it: a wheel (not editable) in a fresh venv, run from outside the
# work tree, so that the model in the box, the page and the report's templates must come from the
# wheel. predict (no run folder), serve (no run folder) and reproduce --quick must work.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
tmp="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --upgrade pip
"$tmp/venv/bin/pip" wheel --quiet --no-deps -w "$tmp/dist" .
"$tmp/venv/bin/pip" install --quiet -c constraints.txt "$tmp"/dist/digitlearn-*.whl
cd "$tmp"
"$tmp/venv/bin/python" -c "
from PIL import Image, ImageDraw
img = Image.new('L', (280, 280), 255)
ImageDraw.Draw(img).line([(70, 60), (210, 60), (120, 230)], fill=0, width=18)
img.save('seven.png')"
"$tmp/venv/bin/digitlearn" predict seven.png
"$tmp/venv/bin/digitlearn" serve --port 8765 > serve.log 2>&1 &
server=$!
for _ in $(seq 100); do
  if "$tmp/venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/health')" 2>/dev/null; then
    break
  fi
  sleep 0.2
done
"$tmp/venv/bin/python" -c "
import json, urllib.request
page = urllib.request.urlopen('http://127.0.0.1:8765/').read()
assert b'<canvas' in page
req = urllib.request.Request('http://127.0.0.1:8765/api/predict', open('seven.png', 'rb').read(), {'Content-Type': 'image/png'})
print('serve:', json.loads(urllib.request.urlopen(req).read())['label'])"
"$tmp/venv/bin/digitlearn" reproduce --quick --out "$tmp/report" | tail -2
echo "installed from the wheel: predict, serve and reproduce --quick work (from $root)"
