// Package secureerase sanitizes the storage a FRU leaves with: block
// devices, files and directories named in the FRU's wipe plan. It offers
// crypto erase of LUKS volumes, BLKSECDISCARD, BLKDISCARD with a zero check
// and overwrite (zeros or an AES-CTR keystream, any number of passes), each
// verified in full or by sampling, and records the outcome as a certificate
// with the fields of NIST SP 800-88 Rev. 1 Appendix G, signed with the
// node's key.
//
// Methods are small plug-ins behind the Method interface; an Eraser tries a
// target's methods in the plan's order and moves to the next one when a
// method reports ErrNotSupported. The Eraser refuses anything not named in
// the plan (compared by resolved path and, where the plan names one, by the
// device's serial number or WWN), any block device that is mounted, has a
// mounted partition, is held by a device-mapper or loop device or is used
// as swap, and never follows a symbolic link out of a planned directory.
//
// Certificates travel: the hot-swap workflows put the certificates of a
// verified wipe into the cluster's log so that every member keeps them.
// DecodeCertificates and VerifyCertificates check such a set strictly and
// within bounds (MaxCertificatesSize, MaxCertificates) before anything of it
// is kept; ParseSignerKey and CheckSignerKey check the key it verifies with.
package secureerase
