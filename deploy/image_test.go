package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telescope-dev/telescope/internal/pcaptest"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// testVersion is stamped into the binary the deploy tests build, as the Dockerfile does.
const testVersion = "v0.0.0-deploytest"

// telescopeBinary builds the static binary once (CGO_ENABLED=0, version stamped).
func telescopeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "telescope-deploy-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "telescope")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+testVersion, "-o", binPath, "../cmd/telescope")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = &buildError{err, string(out)}
		}
	})
	if binErr != nil {
		t.Fatalf("go build: %v", binErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// finalStage returns the shipped Dockerfile's final stage with its COPY --from=build
// sources taken from a local build context instead (no base image can be pulled here).
func finalStage(t *testing.T) string {
	t.Helper()
	df := string(read(t, "../Dockerfile"))
	i := strings.LastIndex(df, "\nFROM scratch\n")
	if i < 0 {
		t.Fatal("Dockerfile: no final stage FROM scratch")
	}
	final := df[i+1:]
	if !strings.Contains(df, `-X main.version=${VERSION}`) || !strings.Contains(df, "CGO_ENABLED=0") {
		t.Errorf("Dockerfile does not build a static binary with its version stamped")
	}
	final = strings.ReplaceAll(final, "COPY --from=build /out/telescope ", "COPY telescope ")
	final = strings.ReplaceAll(final, "COPY --from=build /out/etc/telescope/telescope.yaml ", "COPY telescope.yaml ")
	if strings.Contains(final, "--from=") {
		t.Fatalf("final stage copies something else from the build stage:\n%s", final)
	}
	return final
}

// TestImage builds the final stage of the Dockerfile from the locally built static binary
// with buildah (in a private storage), checks user, entrypoint, port and contents, and
// runs the binary taken out of the image.
func TestImage(t *testing.T) {
	buildah := requireTool(t, "buildah", "buildah")
	podman := requireTool(t, "podman", "podman")
	bin := telescopeBinary(t)
	ctx := t.TempDir()
	store := t.TempDir()
	storage := []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs"}
	t.Cleanup(func() {
		_ = exec.Command(podman, append(slices.Clone(storage), "system", "reset", "--force")...).Run()
	})
	if err := os.WriteFile(filepath.Join(ctx, "telescope"), read(t, bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if setcap, err := exec.LookPath("setcap"); err == nil {
		run(t, setcap, "cap_net_raw,cap_net_admin+ep", filepath.Join(ctx, "telescope"))
	}
	if err := os.WriteFile(filepath.Join(ctx, "telescope.yaml"), read(t, "../configs/telescope.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(finalStage(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	const img = "localhost/telescope-deploytest:latest"
	run(t, buildah, append(slices.Clone(storage), "build", "--isolation", "chroot", "-f", filepath.Join(ctx, "Dockerfile"), "-t", img, ctx)...)

	var info []struct {
		Config struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]struct{}
		}
	}
	if err := json.Unmarshal([]byte(run(t, podman, append(slices.Clone(storage), "image", "inspect", img)...)), &info); err != nil || len(info) != 1 {
		t.Fatalf("podman image inspect: %v", err)
	}
	c := info[0].Config
	if c.User != "65532:65532" {
		t.Errorf("image user %q, want non-root 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/telescope"}) || !slices.Equal(c.Cmd, []string{"run", "--config", "/etc/telescope/telescope.yaml"}) {
		t.Errorf("image entrypoint %v cmd %v", c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["9813/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("image exposes %v, want 9813/tcp", c.ExposedPorts)
	}

	// Take the files out of the image (an OCI layout: no container is run).
	oci := filepath.Join(t.TempDir(), "oci")
	run(t, podman, append(slices.Clone(storage), "save", "--format", "oci-dir", "-o", oci, img)...)
	files := imageFiles(t, oci)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"etc/telescope/telescope.yaml", "telescope"}) {
		t.Errorf("image files %v, want only the binary and the default config", names)
	}
	out := filepath.Join(t.TempDir(), "telescope")
	if err := os.WriteFile(out, files["telescope"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	if caps := files["telescope"].xattrs["security.capability"]; caps == "" {
		t.Errorf("the image's binary carries no file capabilities (setcap cap_net_raw,cap_net_admin+ep)")
	}
	if v := run(t, out, "version"); strings.TrimSpace(v) != "telescope "+testVersion {
		t.Errorf("telescope version from the image: %q, want the stamped %s", v, testVersion)
	}
	// A small replay with the image's binary and the image's config.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "telescope.yaml"), files["etc/telescope/telescope.yaml"].data, 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var ps []pcaptest.Packet
	for i := range 30 {
		ps = append(ps, pcaptest.Packet{TS: t0.Add(time.Duration(i) * time.Second), Src: netip.MustParseAddr("192.0.2.10"),
			Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), SrcPort: 40000, DstPort: 23, Flags: 0x02})
	}
	pcap := filepath.Join(dir, "small.pcap")
	if err := pcaptest.WriteFile(pcap, ps); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	cmd := exec.Command(out, "replay", "--config", filepath.Join(dir, "telescope.yaml"), "--report", report, pcap)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("replay with the image's binary: %v\n%s", err, b)
	}
	var r struct {
		Frames  uint64
		Packets map[string]map[string]uint64
	}
	if err := json.Unmarshal(read(t, report), &r); err != nil {
		t.Fatal(err)
	}
	if r.Frames != 30 || r.Packets["ipv4"]["tcp"] != 30 {
		t.Errorf("replay report: %d frames, %d IPv4 TCP packets; want 30 and 30", r.Frames, r.Packets["ipv4"]["tcp"])
	}
}

type imageFile struct {
	data   []byte
	xattrs map[string]string
}

// imageFiles reads the regular files of every layer of a single-image OCI layout.
func imageFiles(t *testing.T, dir string) map[string]imageFile {
	t.Helper()
	blob := func(digest string) []byte {
		return read(t, filepath.Join(dir, "blobs", strings.Replace(digest, ":", "/", 1)))
	}
	var index struct{ Manifests []struct{ Digest string } }
	if err := json.Unmarshal(read(t, filepath.Join(dir, "index.json")), &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("OCI index: %v", err)
	}
	var manifest struct {
		Layers []struct{ Digest, MediaType string }
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	files := map[string]imageFile{}
	for _, l := range manifest.Layers {
		var r io.Reader = bytes.NewReader(blob(l.Digest))
		if strings.HasSuffix(l.MediaType, "gzip") {
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			x := map[string]string{}
			for k, v := range h.PAXRecords {
				if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
					x[name] = v
				}
			}
			files[strings.TrimPrefix(h.Name, "./")] = imageFile{data: data, xattrs: x}
		}
	}
	return files
}
