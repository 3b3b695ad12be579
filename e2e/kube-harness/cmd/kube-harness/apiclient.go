package main

// A minimal admin HTTPS client for readiness probes; tests use real Kubernetes clients.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

type apiClient struct {
	server string
	http   *http.Client
}

func newAPIClient(p *pki, server string) (*apiClient, error) {
	caPEM, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no CA certificate in %s", p.path("ca.crt"))
	}
	cert, err := tls.LoadX509KeyPair(p.path("admin.crt"), p.path("admin.key"))
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	return &apiClient{server: server, http: &http.Client{Transport: transport, Timeout: 5 * time.Second}}, nil
}

// ok reports whether GET path answers 200.
func (a *apiClient) ok(path string) bool {
	resp, err := a.http.Get(a.server + path)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}
