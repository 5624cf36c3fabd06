package config

// SetHost makes Load see h as the host until the returned func is called.
func SetHost(h Host) (restore func()) {
	old := readHost
	readHost = func() (Host, error) { return h, nil }
	return func() { readHost = old }
}

var SizeText = sizeText
