// Package certid names a certificate by its fingerprint, the one form the
// listener's revoked file, the partners' client certificate mapping and
// the access log share: "sha256:" and the lowercase hex SHA-256 of the
// certificate's DER encoding.
package certid
