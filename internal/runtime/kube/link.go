package kube

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"atelier/internal/desklink"
	"atelier/internal/homefiles"
	"atelier/internal/runtime"
)

// homePodTimeout bounds how long a home pod may take to serve.
const homePodTimeout = 2 * time.Minute

// link opens a connection carrying proto to desktop id's link server at
// addr, which must present the certificate cert.
func (r *Runtime) link(ctx context.Context, id, addr string, cert []byte, proto string) (*tls.Conn, error) {
	cfg, err := desklink.ClientConfig(r.fleet, id, cert, proto)
	if err != nil {
		return nil, err
	}
	return desklink.Dial(ctx, addr, cfg)
}

// running returns the link address of desktop id's running pod and the
// certificate its link presents.
func (r *Runtime) running(ctx context.Context, id string) (addr string, cert []byte, err error) {
	s, err := r.secret(ctx, id)
	if err != nil {
		return "", nil, err
	}
	p, err := r.pod(ctx, objectName(id))
	if err != nil {
		return "", nil, err
	}
	if addr, err = podAddr(p); err != nil {
		return "", nil, fmt.Errorf("%s: desktop %w", id, err)
	}
	return addr, s.Data[desklink.CertFile], nil
}

// Dial connects to the desktop's agent or VNC server through its link.
func (r *Runtime) Dial(ctx context.Context, id string, endpoint runtime.Endpoint) (net.Conn, error) {
	proto := map[runtime.Endpoint]string{runtime.EndpointAgent: desklink.ProtoAgent, runtime.EndpointVNC: desklink.ProtoVNC}[endpoint]
	if proto == "" {
		return nil, fmt.Errorf("dial %s: unknown endpoint %q", id, endpoint)
	}
	addr, cert, err := r.running(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c, err := r.link(ctx, id, addr, cert, proto)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", id, err)
	}
	return c, nil
}

// WriteRunFile writes the budget or theme file: into the desktop's Secret,
// which the link server copies into the run dir when the pod starts, and,
// if the desktop runs, through its link at once.
func (r *Runtime) WriteRunFile(ctx context.Context, id, name string, data []byte) error {
	if err := desklink.CheckRunFile(name); err != nil {
		return fmt.Errorf("write run file of %s: %w", id, err)
	}
	s, err := r.secret(ctx, id)
	if err != nil {
		return fmt.Errorf("write run file: %w", err)
	}
	s.Data[desklink.RunFilePrefix+name] = data
	if _, err := r.c.CoreV1().Secrets(r.ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write run file %s of %s: %w", name, id, err)
	}
	p, err := r.pod(ctx, objectName(id))
	if err != nil {
		return fmt.Errorf("write run file %s of %s: %w", name, id, err)
	}
	addr, err := podAddr(p)
	if err != nil {
		return nil // stopped: the Secret has it for the next start
	}
	c, err := r.link(ctx, id, addr, s.Data[desklink.CertFile], desklink.ProtoRunFile)
	if err != nil {
		return fmt.Errorf("write run file %s of %s: %w", name, id, err)
	}
	if err := desklink.WriteRunFile(c, name, data); err != nil {
		return fmt.Errorf("write run file %s of %s: %w", name, id, err)
	}
	return nil
}

// Home is unsupported: a home is a volume in the cluster, on no host the
// fleet can open; HomeFiles serves the file API instead.
func (r *Runtime) Home(ctx context.Context, id string) (runtime.HomeDir, error) {
	return runtime.HomeDir{}, fmt.Errorf("home of %s: a kube home is a volume in the cluster, not a directory on the fleet's host: %w", id, errors.ErrUnsupported)
}

// HomeFiles are the file operations on a running desktop's home, each
// performed by its link server (package homefiles there, beneath the
// home volume).
func (r *Runtime) HomeFiles(ctx context.Context, id string) (homefiles.Files, error) {
	addr, cert, err := r.running(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("home files: %w", err)
	}
	return desklink.Files{Dial: func() (*tls.Conn, error) {
		return r.link(ctx, id, addr, cert, desklink.ProtoFiles)
	}}, nil
}

// homeUsage reports how full a running desktop's home is: the volume's
// filesystem as its link server's statfs sees it, against the claim's
// capacity. A volume that does not enforce the claim's size (its
// filesystem is larger, as a local or hostPath volume's is) has no quota
// to report, as a local home made without one has none: nil.
func (r *Runtime) homeUsage(ctx context.Context, id, addr string, cert []byte) (*runtime.HomeUsage, error) {
	pvc, err := r.c.CoreV1().PersistentVolumeClaims(r.ns).Get(ctx, ClaimName(id), metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("home usage: %w", err)
	}
	capacity, ok := pvc.Status.Capacity[corev1.ResourceStorage]
	if !ok {
		return nil, nil // not bound yet
	}
	u, err := desklink.Files{Dial: func() (*tls.Conn, error) {
		return r.link(ctx, id, addr, cert, desklink.ProtoFiles)
	}}.Usage()
	if err != nil {
		// A pod still starting has no link server to ask yet.
		return nil, nil
	}
	if u.Size > capacity.Value() {
		return nil, nil
	}
	return &runtime.HomeUsage{Used: u.Used, Free: u.Free, Quota: capacity.Value()}, nil
}

// ExportHome writes the desktop's home as a tar stream through its link,
// or, while it is stopped, through a home pod's.
func (r *Runtime) ExportHome(ctx context.Context, id string, w io.Writer) error {
	export := func(addr string, cert []byte) error {
		c, err := r.link(ctx, id, addr, cert, desklink.ProtoHomeExport)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = io.Copy(w, c)
		return err
	}
	addr, cert, err := r.running(ctx, id)
	if err == nil {
		err = export(addr, cert)
	} else if _, serr := r.secret(ctx, id); serr == nil {
		err = r.withHomePod(ctx, id, export)
	}
	if err != nil {
		return fmt.Errorf("export home of %s: %w", id, err)
	}
	return nil
}

// withHomePod runs the link server alone in a pod mounting desktop id's
// home claim, calls fn with its address once it serves, and deletes it.
func (r *Runtime) withHomePod(ctx context.Context, id string, fn func(addr string, cert []byte) error) error {
	s, err := r.secret(ctx, id)
	if err != nil {
		return err
	}
	spec, err := specOf(s)
	if err != nil {
		return fmt.Errorf("desktop record: %w", err)
	}
	name := homePodName(id)
	defer r.deleteAndWait(context.WithoutCancel(ctx), name, 0)
	p := r.basePod(name, id, roleHomeIO)
	p.Spec.Containers = []corev1.Container{r.linkContainer(spec.Image)}
	if err := r.deleteAndWait(ctx, name, 0); err != nil {
		return err
	}
	if _, err := r.c.CoreV1().Pods(r.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("home pod: %w", err)
	}
	var addr string
	err = poll(ctx, homePodTimeout, func() (bool, error) {
		p, err := r.pod(ctx, name)
		if err != nil {
			return false, err
		}
		if p != nil && p.Status.Phase == corev1.PodFailed {
			return false, fmt.Errorf("home pod %s failed: %s", name, p.Status.Message)
		}
		addr, err = podAddr(p)
		if err != nil {
			return false, nil
		}
		// Running is not yet listening: a handshake tells.
		c, err := r.link(ctx, id, addr, s.Data[desklink.CertFile], desklink.ProtoRunFile)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("home pod %s: %w", name, err)
	}
	return fn(addr, s.Data[desklink.CertFile])
}
