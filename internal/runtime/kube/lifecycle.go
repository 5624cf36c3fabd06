package kube

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"atelier/desktop"
	"atelier/internal/desklink"
	"atelier/internal/runtime"
	"atelier/internal/snapshot/archive"
)

// stopGrace is how long a stopping desktop gets before SIGKILL.
const stopGrace = 5

// Create makes the desktop's Secret, NetworkPolicy and home claim (kept
// if it exists), and fills a new home from spec.HomeArchive. A refused
// spec or archive changes nothing.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) error {
	if err := runtime.CheckID(spec.ID); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	id := spec.ID
	if err := spec.Check(); err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	// A hostile archive is refused here, before anything is made.
	var staged string
	if spec.HomeArchive != nil {
		tmp, err := os.MkdirTemp("", "atelier-kube-home-")
		if err != nil {
			return fmt.Errorf("create %s: %w", id, err)
		}
		defer os.RemoveAll(tmp)
		staged = tmp + "/home"
		if err := archive.ExtractTar(staged, spec.HomeArchive, archive.ExtractOptions{}); err != nil {
			return fmt.Errorf("create %s: home archive: %w", id, err)
		}
	}

	claims := r.c.CoreV1().PersistentVolumeClaims(r.ns)
	_, err := claims.Get(ctx, ClaimName(id), metav1.GetOptions{})
	newClaim := apierrors.IsNotFound(err)
	if err != nil && !newClaim {
		return fmt.Errorf("create %s: %w", id, err)
	}
	if staged != "" && !newClaim {
		return fmt.Errorf("create %s: a home archive is only for a new home, and %s exists", id, ClaimName(id))
	}
	old, err := r.secret(ctx, id)
	switch {
	case err == nil:
		p, err := r.pod(ctx, objectName(id))
		if err != nil {
			return fmt.Errorf("create %s: %w", id, err)
		}
		if p != nil {
			return fmt.Errorf("create %s: desktop exists and runs", id)
		}
		// Stopped: made again from this spec, keeping home and credential.
		if err := r.c.CoreV1().Secrets(r.ns).Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("create %s: %w", id, err)
		}
	case !errors.Is(err, runtime.ErrNotFound):
		return fmt.Errorf("create %s: %w", id, err)
	}

	// Whatever fails from here undoes what this call made.
	undo := func(ctx context.Context) {
		r.c.CoreV1().Pods(r.ns).Delete(ctx, homePodName(id), metav1.DeleteOptions{})
		r.c.NetworkingV1().NetworkPolicies(r.ns).Delete(ctx, objectName(id), metav1.DeleteOptions{})
		r.c.CoreV1().Secrets(r.ns).Delete(ctx, objectName(id), metav1.DeleteOptions{})
		if newClaim {
			claims.Delete(ctx, ClaimName(id), metav1.DeleteOptions{})
		}
		os.RemoveAll(r.gateDir(id))
	}
	if err := r.create(ctx, spec, old, newClaim); err != nil {
		undo(context.WithoutCancel(ctx))
		return fmt.Errorf("create %s: %w", id, err)
	}
	if staged != "" {
		if err := r.fillHome(ctx, id, staged); err != nil {
			undo(context.WithoutCancel(ctx))
			return fmt.Errorf("create %s: fill home: %w", id, err)
		}
	}
	r.log.Info("desktop created", "desktop", id, "resolution", spec.Resolution.String(), "new_home", newClaim)
	return nil
}

func (r *Runtime) create(ctx context.Context, spec runtime.Spec, old *corev1.Secret, newClaim bool) error {
	id := spec.ID
	var cred desklink.Pair
	if old != nil {
		cred = desklink.Pair{Cert: old.Data[desklink.CertFile], Key: old.Data[desklink.KeyFile]}
	} else {
		var err error
		if cred, err = desklink.NewServerPair(id); err != nil {
			return err
		}
	}
	image := r.opts.Image
	if spec.Image != "" {
		image = spec.Image
	}
	res := spec.Resources.Or(r.opts.Limits)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: objectName(id), Labels: r.labels(id, roleDesktop), Annotations: map[string]string{
			annLabel: spec.Label, annResolution: spec.Resolution.String(), annTheme: spec.Theme, annImage: image,
			annMemory: strconv.FormatInt(res.MemoryBytes, 10), annCPUs: strconv.FormatFloat(res.CPUs, 'f', -1, 64),
			annPIDs: strconv.FormatInt(res.PIDs, 10),
		}},
		Data: map[string][]byte{desklink.CertFile: cred.Cert, desklink.KeyFile: cred.Key, desklink.FleetFile: r.fleet.Cert},
	}
	if _, err := r.c.CoreV1().Secrets(r.ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := r.applyPolicy(ctx, id); err != nil {
		return err
	}
	if newClaim {
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: ClaimName(id), Labels: r.labels(id, roleDesktop)},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: r.opts.HomeSize}},
			},
		}
		if r.opts.StorageClass != "" {
			pvc.Spec.StorageClassName = &r.opts.StorageClass
		}
		if _, err := r.c.CoreV1().PersistentVolumeClaims(r.ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return os.MkdirAll(r.gateDir(id), 0o711)
}

// applyPolicy makes (or remakes) desktop id's NetworkPolicy: in, only the
// fleet, only to the link's port; out, only the fleet's egress gateway
// (its address, or the fleet's pods, which a Service's address leads to),
// only its port, and no DNS; nothing without a gateway.
func (r *Runtime) applyPolicy(ctx context.Context, id string) error {
	var from []networkingv1.NetworkPolicyPeer
	if len(r.opts.FleetPods) > 0 {
		from = append(from, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: r.opts.FleetPods}})
	}
	for _, cidr := range r.opts.FleetCIDRs {
		from = append(from, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
	}
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: objectName(id), Labels: r.labels(id, roleDesktop)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelSession: id, LabelFleet: r.opts.Fleet}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	if len(from) > 0 {
		port := intstr.FromInt32(desklink.Port)
		tcp := corev1.ProtocolTCP
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: from, Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}}}}
	}
	if r.gatewayIP != nil {
		port := intstr.FromInt(r.gatewayPort)
		tcp := corev1.ProtocolTCP
		bits := 8 * len(r.gatewayIP)
		if r.gatewayIP.To4() != nil {
			bits = 32
		}
		to := []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: (&net.IPNet{IP: r.gatewayIP, Mask: net.CIDRMask(bits, bits)}).String()}}}
		if len(r.opts.FleetPods) > 0 {
			to = append(to, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: r.opts.FleetPods}})
		}
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: to, Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}}}}
	}
	pols := r.c.NetworkingV1().NetworkPolicies(r.ns)
	pols.Delete(ctx, np.Name, metav1.DeleteOptions{}) // one left by a Create that was interrupted
	_, err := pols.Create(ctx, np, metav1.CreateOptions{})
	return err
}

// Start starts a created or stopped desktop; a running one is left alone.
func (r *Runtime) Start(ctx context.Context, id string) error {
	s, err := r.secret(ctx, id)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	p, err := r.pod(ctx, objectName(id))
	if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	if p != nil && p.DeletionTimestamp == nil && (p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending) {
		return nil
	}
	// A pod that ended, or the home pod of a stopped desktop, goes first.
	for _, name := range []string{objectName(id), homePodName(id)} {
		if err := r.deleteAndWait(ctx, name, 0); err != nil {
			return fmt.Errorf("start %s: %w", id, err)
		}
	}
	spec, err := specOf(s)
	if err != nil {
		return fmt.Errorf("start %s: desktop record: %w", id, err)
	}
	if _, err := r.c.CoreV1().Pods(r.ns).Create(ctx, r.desktopPod(spec), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	r.log.Info("desktop started", "desktop", id, "pod", objectName(id))
	return nil
}

// desktopPod is the pod of a desktop: the link server as a native sidecar
// (it starts first, and alone mounts the credential), the desktop
// container with the spec's resources.
func (r *Runtime) desktopPod(spec runtime.Spec) *corev1.Pod {
	id := spec.ID
	res := spec.Resources.Or(r.opts.Limits)
	grace := int64(stopGrace)
	mem := resource.NewQuantity(res.MemoryBytes, resource.BinarySI)
	cpu := resource.NewMilliQuantity(int64(res.CPUs*1000), resource.DecimalSI)
	shm := resource.MustParse("512Mi")
	link := r.linkContainer(spec.Image)
	link.VolumeMounts = append(link.VolumeMounts, corev1.VolumeMount{Name: "gate", MountPath: desktop.GateDirPath})
	if gw := r.GatewayAddr(); gw != "" {
		link.Command = append(link.Command, "--gateway", gw, "--gate-dir", desktop.GateDirPath)
	}
	always := corev1.ContainerRestartPolicyAlways
	link.RestartPolicy = &always
	p := r.basePod(objectName(id), id, roleDesktop)
	p.Spec.TerminationGracePeriodSeconds = &grace
	p.Spec.InitContainers = []corev1.Container{link}
	p.Spec.Containers = []corev1.Container{{
		Name:            "desktop",
		Image:           spec.Image,
		ImagePullPolicy: r.opts.PullPolicy,
		Args: []string{"--resolution", spec.Resolution.String(), "--theme", spec.Theme,
			"--egress-gate", path.Join(desktop.GateDirPath, desktop.GateSocket)},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "run", MountPath: desktop.RunDirPath},
			// The link server's gate socket: the desktop connects, and
			// cannot replace it.
			{Name: "gate", MountPath: desktop.GateDirPath, ReadOnly: true},
			{Name: "home", MountPath: desktop.HomePath},
			{Name: "tmp", MountPath: "/tmp"},
			{Name: "shm", MountPath: "/dev/shm"},
		},
		Resources: corev1.ResourceRequirements{
			// Requests are what the scheduler places by: a quarter of the
			// limits, since an idle desktop uses little of them.
			Requests: corev1.ResourceList{corev1.ResourceMemory: *resource.NewQuantity(res.MemoryBytes/4, resource.BinarySI), corev1.ResourceCPU: *resource.NewMilliQuantity(int64(res.CPUs*250), resource.DecimalSI)},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: *mem, corev1.ResourceCPU: *cpu},
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-e", desktop.RunDirPath + "/" + desktop.ReadyFile}}},
			PeriodSeconds: 2,
		},
		SecurityContext: restricted(),
	}}
	p.Spec.Volumes = append(p.Spec.Volumes,
		corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "gate", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "shm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &shm}}},
	)
	return p
}

// basePod is a pod of desktop id with the link's volumes: the credential,
// the run dir, the home claim.
func (r *Runtime) basePod(name, id, role string) *corev1.Pod {
	uid, gid := int64(DesktopUID), int64(DesktopGID)
	no, yes := false, true
	mode := int32(0o440)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: r.labels(id, role)},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyAlways,
			// The desktop has no business with the API server, nor with
			// the namespace's services.
			AutomountServiceAccountToken: &no,
			EnableServiceLinks:           &no,
			Hostname:                     "desktop",
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser: &uid, RunAsGroup: &gid, FSGroup: &gid, RunAsNonRoot: &yes,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Volumes: []corev1.Volume{
				{Name: "link", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: objectName(id), DefaultMode: &mode}}},
				{Name: "run", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "home", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ClaimName(id)}}},
			},
		},
	}
}

// linkContainer runs the link server (atelier-agent link) of the image.
func (r *Runtime) linkContainer(image string) corev1.Container {
	return corev1.Container{
		Name:            "link",
		Image:           image,
		ImagePullPolicy: r.opts.PullPolicy,
		Command:         []string{agentPath, "link", "--tls-dir", linkDir, "--run-dir", desktop.RunDirPath, "--home", homeVolume},
		Ports:           []corev1.ContainerPort{{Name: "link", ContainerPort: desklink.Port, Protocol: corev1.ProtocolTCP}},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "link", MountPath: linkDir, ReadOnly: true},
			{Name: "run", MountPath: desktop.RunDirPath},
			{Name: "home", MountPath: homeVolume},
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi"), corev1.ResourceCPU: resource.MustParse("10m")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		SecurityContext: restricted(),
	}
}

// restricted: no capability, no privilege gained (setuid).
func restricted() *corev1.SecurityContext {
	no := false
	return &corev1.SecurityContext{AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
}

// Stop deletes the desktop's pod, keeping its home; a stopped one is left
// alone.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	if _, err := r.secret(ctx, id); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if err := r.deleteAndWait(ctx, objectName(id), stopGrace); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	r.log.Info("desktop stopped", "desktop", id)
	return nil
}

// Remove deletes the desktop's pods, policy and Secret, and its home claim
// if purge. Purging the kept home of a desktop removed earlier is allowed.
func (r *Runtime) Remove(ctx context.Context, id string, purge bool) error {
	if err := runtime.CheckID(id); err != nil {
		return fmt.Errorf("remove: %w: %v", runtime.ErrNotFound, err)
	}
	_, err := r.secret(ctx, id)
	found := err == nil
	if err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("remove: %w", err)
	}
	if found {
		for _, name := range []string{objectName(id), homePodName(id)} {
			if err := r.deleteAndWait(ctx, name, 0); err != nil {
				return fmt.Errorf("remove %s: %w", id, err)
			}
		}
		if err := r.c.NetworkingV1().NetworkPolicies(r.ns).Delete(ctx, objectName(id), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("remove %s: %w", id, err)
		}
		if err := r.c.CoreV1().Secrets(r.ns).Delete(ctx, objectName(id), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("remove %s: %w", id, err)
		}
	}
	if purge {
		claims := r.c.CoreV1().PersistentVolumeClaims(r.ns)
		c, err := claims.Get(ctx, ClaimName(id), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("remove %s: home: %w", id, err)
		case c.Labels[LabelFleet] != r.opts.Fleet:
			return fmt.Errorf("remove %s: home claim %s is not this fleet's", id, c.Name)
		default:
			found = true
			if err := claims.Delete(ctx, c.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("remove %s: home: %w", id, err)
			}
			// A new desktop of the same id must get a new claim, not this
			// one while it terminates.
			if err := poll(ctx, time.Minute, func() (bool, error) {
				_, err := claims.Get(ctx, c.Name, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			}); err != nil {
				return fmt.Errorf("remove %s: home claim still terminating: %w", id, err)
			}
		}
		os.RemoveAll(r.gateDir(id))
	}
	if !found {
		return fmt.Errorf("remove: %w: %s", runtime.ErrNotFound, id)
	}
	r.log.Info("desktop removed", "desktop", id, "purge", purge)
	return nil
}

// Inspect reports one desktop: running from the pod's creation on; degraded
// when its desktop container is not ready (no ready file) after a minute.
func (r *Runtime) Inspect(ctx context.Context, id string) (runtime.Instance, error) {
	s, err := r.secret(ctx, id)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("inspect: %w", err)
	}
	p, err := r.pod(ctx, objectName(id))
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("inspect %s: %w", id, err)
	}
	in := instance(id, p)
	if addr, aerr := podAddr(p); in.Running && aerr == nil {
		if in.Home, err = r.homeUsage(ctx, id, addr, s.Data[desklink.CertFile]); err != nil {
			return runtime.Instance{}, fmt.Errorf("inspect %s: %w", id, err)
		}
	}
	return in, nil
}

// degradedAfter is how long a running desktop may take to be ready before
// it counts as degraded.
const degradedAfter = 60 * time.Second

func instance(id string, p *corev1.Pod) runtime.Instance {
	in := runtime.Instance{ID: id, Detail: "no pod"}
	if p == nil {
		return in
	}
	// The pod's uid names this incarnation: a restarted desktop is a new pod.
	in.Detail = "pod " + p.Name + " uid " + string(p.UID)[:min(8, len(p.UID))]
	// A pod the cluster accepted runs, as a started container does: one
	// still scheduled or pulling its image is not a desktop to start again.
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodPending && p.Status.Phase != corev1.PodRunning {
		return in
	}
	in.Running = true
	in.StartedAt = p.CreationTimestamp.Time
	ready := false
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "desktop" {
			ready = cs.Ready
			if cs.State.Running != nil {
				in.StartedAt = cs.State.Running.StartedAt.Time
			}
		}
	}
	in.Degraded = !ready && time.Since(in.StartedAt) > degradedAfter
	return in
}

// List reports every desktop of this fleet in the namespace.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	sel := metav1.ListOptions{LabelSelector: LabelFleet + "=" + r.opts.Fleet + "," + LabelRole + "=" + roleDesktop}
	secrets, err := r.c.CoreV1().Secrets(r.ns).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	pods, err := r.c.CoreV1().Pods(r.ns).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	byName := map[string]*corev1.Pod{}
	for i := range pods.Items {
		byName[pods.Items[i].Name] = &pods.Items[i]
	}
	var out []runtime.Instance
	for _, s := range secrets.Items {
		id := s.Labels[LabelSession]
		if runtime.CheckID(id) != nil || s.Name != objectName(id) {
			continue // not one of ours, whatever its labels say
		}
		out = append(out, instance(id, byName[objectName(id)]))
	}
	return out, nil
}

// fillHome streams the staged home into the new claim through a home pod.
func (r *Runtime) fillHome(ctx context.Context, id, staged string) error {
	return r.withHomePod(ctx, id, func(addr string, cert []byte) error {
		c, err := r.link(ctx, id, addr, cert, desklink.ProtoHomeImport)
		if err != nil {
			return err
		}
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			_, err := archive.WriteTar(ctx, tw, staged, &archive.Owner{UID: DesktopUID, GID: DesktopGID})
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		err = desklink.ImportHome(c, pr)
		pr.CloseWithError(errors.New("import abandoned"))
		return err
	})
}
