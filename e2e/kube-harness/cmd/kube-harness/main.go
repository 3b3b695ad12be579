// Command kube-harness runs a real, throwaway Kubernetes control plane on loopback: embedded
// etcd, kube-apiserver and kube-controller-manager built from the official k8s.io/kubernetes
// module. It prints "ready kubeconfig=PATH" on stdout once the API answers /readyz and the
// controllers work, and tears everything down on SIGINT/SIGTERM (or stdin EOF, if asked).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// serviceIP is the first address of the service range: the in-cluster "kubernetes" Service.
const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
)

func init() {
	// Children are started from main with a parent-death signal tied to this thread.
	runtime.LockOSThread()
}

type options struct {
	binDir        string
	dataDir       string
	kubeconfigOut string
	stdinEOF      bool
	readyTimeout  time.Duration
	runID         string
}

func main() {
	var o options
	exe, _ := os.Executable()
	flag.StringVar(&o.binDir, "bin-dir", filepath.Dir(exe), "directory holding kube-apiserver and kube-controller-manager")
	flag.StringVar(&o.dataDir, "data-dir", "", "state directory (default: a fresh temporary directory, removed on exit)")
	flag.StringVar(&o.kubeconfigOut, "kubeconfig-out", "", "also write the admin kubeconfig to this path")
	flag.BoolVar(&o.stdinEOF, "exit-on-stdin-eof", false, "shut down when standard input closes (for test runners)")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 3*time.Minute, "how long to wait for the control plane to become ready")
	flag.StringVar(&o.runID, "run-id", "", "tag for the temporary directory (berth-kube-RUNID-*), so a test run can find what it started")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "kube-harness: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	start := time.Now()
	version, err := os.ReadFile(filepath.Join(o.binDir, "VERSION"))
	if err != nil {
		return fmt.Errorf("reading %s/VERSION (run e2e/kube-harness/build.sh): %w", o.binDir, err)
	}
	if o.dataDir == "" {
		prefix := "berth-kube-"
		if o.runID != "" {
			prefix += o.runID + "-"
		}
		d, err := os.MkdirTemp("", prefix)
		if err != nil {
			return err
		}
		o.dataDir = d
		defer os.RemoveAll(d)
	}

	stop := make(chan string, 2)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { s := <-sigs; stop <- "received " + s.String() }()
	if o.stdinEOF {
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop <- "standard input closed" }()
	}

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClientPort, etcdPeerPort, apiPort := ports[0], ports[1], ports[2]
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	p, err := newPKI(filepath.Join(o.dataDir, "pki"))
	if err != nil {
		return fmt.Errorf("creating certificates: %w", err)
	}
	if err := p.issue("apiserver", "kube-apiserver", nil, true); err != nil {
		return err
	}
	if err := p.issue("admin", "berth-admin", []string{"system:masters"}, false); err != nil {
		return err
	}
	if err := p.issue("controller-manager", "system:kube-controller-manager", nil, false); err != nil {
		return err
	}
	if err := p.serviceAccountKey(); err != nil {
		return err
	}
	adminKubeconfig := filepath.Join(o.dataDir, "admin.kubeconfig")
	if err := p.kubeconfig(adminKubeconfig, "admin", server); err != nil {
		return err
	}
	cmKubeconfig := filepath.Join(o.dataDir, "controller-manager.kubeconfig")
	if err := p.kubeconfig(cmKubeconfig, "controller-manager", server); err != nil {
		return err
	}

	etcd, etcdURL, err := startEtcd(o.dataDir, etcdClientPort, etcdPeerPort)
	if err != nil {
		return err
	}
	defer etcd.Close()

	apiserver, err := startChild(o.binDir, o.dataDir, "kube-apiserver", []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--endpoint-reconciler-type=none",
		"--authorization-mode=RBAC",
		"--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota",
		"--client-ca-file=" + p.path("ca.crt"),
		"--tls-cert-file=" + p.path("apiserver.crt"),
		"--tls-private-key-file=" + p.path("apiserver.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + p.path("sa.pub"),
		"--service-account-signing-key-file=" + p.path("sa.key"),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--cert-dir=" + filepath.Join(o.dataDir, "apiserver-certs"),
		"--profiling=false",
	})
	if err != nil {
		return err
	}
	children := []*child{apiserver}
	defer func() {
		// Reverse start order: the controller-manager goes before the apiserver it talks to.
		for i := len(children) - 1; i >= 0; i-- {
			children[i].stop(15 * time.Second)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), o.readyTimeout)
	defer cancel()
	api, err := newAPIClient(p, server)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, children, stop, "kube-apiserver /readyz", func() bool { return api.ok("/readyz") }); err != nil {
		return err
	}

	cm, err := startChild(o.binDir, o.dataDir, "kube-controller-manager", []string{
		"--kubeconfig=" + cmKubeconfig,
		"--controllers=" + strings.Join([]string{
			"namespace-controller",
			"serviceaccount-controller",
			"serviceaccount-token-controller",
			"resourcequota-controller",
			"garbage-collector-controller",
			"clusterrole-aggregation-controller",
			"root-ca-certificate-publisher-controller",
			"deployment-controller",
			"replicaset-controller",
		}, ","),
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + p.path("sa.key"),
		"--root-ca-file=" + p.path("ca.crt"),
		"--leader-elect=false",
		"--secure-port=0",
	})
	if err != nil {
		return err
	}
	children = append(children, cm)
	// The serviceaccount controller creating "default" proves the controller-manager works.
	if err := waitFor(ctx, children, stop, "kube-controller-manager (the default ServiceAccount)", func() bool {
		return api.ok("/api/v1/namespaces/default/serviceaccounts/default")
	}); err != nil {
		return err
	}

	if o.kubeconfigOut != "" {
		if err := p.kubeconfig(o.kubeconfigOut, "admin", server); err != nil {
			return fmt.Errorf("writing --kubeconfig-out: %w", err)
		}
		adminKubeconfig = o.kubeconfigOut
	}
	fmt.Fprintf(os.Stderr, "kube-harness: Kubernetes %s ready at %s in %.1fs (logs in %s)\n",
		strings.TrimSpace(string(version)), server, time.Since(start).Seconds(), o.dataDir)
	fmt.Printf("ready kubeconfig=%s\n", adminKubeconfig)

	select {
	case why := <-stop:
		fmt.Fprintf(os.Stderr, "kube-harness: %s, shutting down\n", why)
		return nil
	case c := <-exitedChild(children):
		return fmt.Errorf("%s exited unexpectedly (%v); last log lines:\n%s", c.name, c.err, c.logTail(30))
	}
}

// waitFor polls until ready() holds, failing early if a child dies or a stop is requested.
func waitFor(ctx context.Context, children []*child, stop <-chan string, what string, ready func() bool) error {
	exited := exitedChild(children)
	for {
		if ready() {
			return nil
		}
		select {
		case c := <-exited:
			return fmt.Errorf("%s exited before %s was ready (%v); last log lines:\n%s", c.name, what, c.err, c.logTail(30))
		case why := <-stop:
			return fmt.Errorf("%s before %s was ready", why, what)
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s; last log lines of %s:\n%s", what,
				children[len(children)-1].name, children[len(children)-1].logTail(30))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// exitedChild reports the first child to exit.
func exitedChild(children []*child) <-chan *child {
	out := make(chan *child, len(children))
	for _, c := range children {
		go func() { <-c.done; out <- c }()
	}
	return out
}

// freePorts asks the kernel for n distinct free loopback ports. They are released before use,
// so another process could take one in between; the window is small and a clash fails loudly.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
