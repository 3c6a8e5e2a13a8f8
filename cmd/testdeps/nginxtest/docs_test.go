package nginxtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// The nginx configuration docs/cluster.md shows is one nginx accepts: `nginx -t` on it, with its
// listen ports moved to free loopback ones and its module path the installed one.
func TestDocsNginxConfig(t *testing.T) {
	bin := sysdeps.Require(t, "nginx")
	module := sysdeps.Require(t, "ngx_stream_module.so")
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "cluster.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```nginx\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/cluster.md has no ```nginx block")
	}
	conf := string(m[1])
	for _, want := range []string{"hash $remote_addr$remote_port consistent;", "proxy_timeout", " udp;"} {
		if !strings.Contains(conf, want) {
			t.Errorf("the documented config lacks %q", want)
		}
	}
	b := &Balancer{}
	b.ups = []Upstream{{Name: "coap"}, {Name: "coaps"}}
	if err := b.pickPorts(); err != nil {
		t.Fatal(err)
	}
	conf = strings.Replace(conf, "listen 5683 udp;", "listen "+b.listen["coap"]+" udp;", 1)
	conf = strings.Replace(conf, "listen 5684 udp;", "listen "+b.listen["coaps"]+" udp;", 1)
	conf = regexp.MustCompile(`load_module \S+;`).ReplaceAllString(conf, "load_module "+module+";")
	dir := t.TempDir()
	conf = "pid " + filepath.Join(dir, "nginx.pid") + ";\n" + conf
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t on the documented config: %v\n%s\n%s", err, out, conf)
	}
}
