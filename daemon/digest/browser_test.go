package digest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromiumPath finds Debian's headless Chromium, or skips the test (fails under
// CI=true: .ci/run installs it, so CI always looks at the digest in a real browser).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required in CI (apt-get install chromium): the digest's layout is checked in a real browser")
	}
	t.Skip("chromium not installed (apt-get install chromium); skipping the real-browser layout check")
	return ""
}

// lineBreakProbe runs in the page once it is laid out: for every "File:" line of an
// item it walks the characters of the text outside the file name's <code> and of the
// file name itself, finds where the browser wrapped the line (a character lower than
// the one before it), and counts a wrap inside a word — both neighbours letters or
// digits — as a mid-word break. The file name may break inside only when it is wider
// than its line. The result goes into <pre id="probe"> for --dump-dom.
const lineBreakProbe = `<script>
window.addEventListener('load', function () {
  var W = document.documentElement.clientWidth, lines = 0, wraps = 0, mid = [], word = /[\p{L}\p{N}]/u;
  document.querySelectorAll('div').forEach(function (div) {
    var label = div.querySelector('span');
    if (!label || label.textContent !== 'File:' || div.firstElementChild !== label) return;
    lines++;
    var walker = document.createTreeWalker(div, NodeFilter.SHOW_TEXT), node, prev = null;
    while ((node = walker.nextNode())) {
      var code = node.parentElement.closest('code');
      var codeFits = code && code.getBoundingClientRect().width <= div.getBoundingClientRect().width;
      for (var i = 0; i < node.length; i++) {
        var r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
        var rects = r.getClientRects(); if (!rects.length) continue;
        var top = rects[0].top, ch = node.data[i];
        if (prev && top > prev.top + 2) {
          wraps++;
          if (word.test(prev.ch) && word.test(ch) && (!code || codeFits)) mid.push(prev.ch + '|' + ch + ' in "' + div.textContent.slice(0, 70) + '"');
        }
        prev = {top: top, ch: ch};
      }
    }
  });
  var pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = 'width=' + W + '\nlines=' + lines + '\nwraps=' + wraps + '\nmidword=' + mid.length + '\n' + mid.join('\n');
  document.body.appendChild(pre);
});
</script>`

type probeResult struct {
	width, lines, wraps, midword int
	detail                       string
}

// probeInChromium renders html at a phone-like width in headless Chromium and returns
// what lineBreakProbe measured.
func probeInChromium(t *testing.T, chromium, html string) probeResult {
	t.Helper()
	dir := t.TempDir()
	page := filepath.Join(dir, "digest.html")
	if err := os.WriteFile(page, []byte(strings.Replace(html, "</body>", lineBreakProbe+"</body>", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--window-size=500,1400", "--virtual-time-budget=5000", "--dump-dom", "file://"+page)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	m := regexp.MustCompile(`(?s)<pre id="probe">(.*?)</pre>`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("the probe did not run; chromium printed:\n%.2000s", out)
	}
	var r probeResult
	r.detail = string(m[1])
	for _, l := range strings.Split(r.detail, "\n") {
		k, v, ok := strings.Cut(l, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			continue
		}
		switch k {
		case "width":
			r.width = n
		case "lines":
			r.lines = n
		case "wraps":
			r.wraps = n
		case "midword":
			r.midword = n
		}
	}
	return r
}

// TestDigestFileLineNoMidWordBreaks renders the Italian digest in headless Chromium at
// phone width and checks that no "File:" line is broken inside a word ("dallo s|witch",
// "SI|I"), while the lines do wrap (the check has something to look at). The same page
// with the CSS it replaced (word-break: break-all) must show such breaks: the probe can
// see what it looks for.
func TestDigestFileLineNoMidWordBreaks(t *testing.T) {
	chromium := chromiumPath(t)
	_, _, html, _, err := fixtureDigest(t).Render("it", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html, "overflow-wrap:anywhere") || strings.Contains(html, "break-all") {
		t.Fatalf("the File line's CSS is not the one this test checks")
	}
	got := probeInChromium(t, chromium, html)
	t.Logf("Chromium at %d px: %d File lines, %d wraps, %d mid-word", got.width, got.lines, got.wraps, got.midword)
	if got.lines < 5 || got.wraps == 0 {
		t.Fatalf("nothing to check: %+v", got)
	}
	if got.midword != 0 {
		t.Errorf("File lines broken inside a word:\n%s", got.detail)
	}
	old := strings.ReplaceAll(html, "word-break:normal;overflow-wrap:break-word;", "word-break:break-all;")
	if bad := probeInChromium(t, chromium, old); bad.midword == 0 {
		t.Errorf("the probe finds no mid-word break with word-break:break-all either: it checks nothing (%+v)", bad)
	}
}
