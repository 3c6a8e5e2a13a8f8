// Package send answers the LwM2M Send operation (POST /dp, LwM2M 1.1 Information Reporting):
// a registered device reports resource values unasked; they are kept like notified values.
package send
