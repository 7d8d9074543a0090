package pki

import (
	"crypto/tls"
	"errors"
)

// TLSConfigServer returns a TLS 1.3-only server configuration presenting
// cert and requiring a client certificate signed by ca (with the
// clientAuth usage: client and peer certificates).
func TLSConfigServer(ca *CA, cert *Cert) (*tls.Config, error) {
	if ca == nil || ca.Cert == nil || cert == nil || cert.Cert == nil || cert.Key == nil {
		return nil, errors.New("server TLS configuration: CA certificate and key pair are required")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert.TLSCertificate()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}, nil
}

// TLSConfigClient returns a TLS 1.3-only client configuration presenting
// cert and trusting only servers whose certificates ca signed (with the
// serverAuth usage: server and peer certificates). The caller sets
// ServerName when the address dialled is not the name in the server's
// certificate.
func TLSConfigClient(ca *CA, cert *Cert) (*tls.Config, error) {
	if ca == nil || ca.Cert == nil || cert == nil || cert.Cert == nil || cert.Key == nil {
		return nil, errors.New("client TLS configuration: CA certificate and key pair are required")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert.TLSCertificate()},
		RootCAs:      ca.Pool(),
	}, nil
}
