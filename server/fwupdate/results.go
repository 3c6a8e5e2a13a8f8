package fwupdate

import "fmt"

// ResultClass is what an Update Result (/5/0/5) means for the job.
type ResultClass int

// Result classes.
const (
	ResultUnknown                     ResultClass = iota // out of range: not a code any Object 5 version defines
	ResultSuccess                                        // 1 (and 0 after Updating on devices that reset it)
	ResultRetryable                                      // a new attempt may succeed: 3, 4, 5
	ResultTerminal                                       // the same image will fail again: 2, 6, 7, 8
	ResultTerminalUnlessOtherProtocol                    // 9: try another supported protocol, else terminal
	ResultCancelled                                      // 10 (Object 5 1.1+)
	ResultDeferred                                       // 11 (Object 5 1.2): the device postponed the update
	ResultInitial                                        // 0: nothing to report yet
)

var classNames = [...]string{"unknown", "success", "retryable", "terminal", "terminal unless another protocol",
	"cancelled", "deferred", "initial"}

func (c ResultClass) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return fmt.Sprintf("ResultClass(%d)", int(c))
	}
	return classNames[c]
}

// results are the Update Result codes 0..11. Every code is accepted whatever the object version
// the device declared: a 1.0 device sending 10 means what 1.1 says it means.
var results = [...]struct {
	reason string
	class  ResultClass
}{
	0:  {"initial value", ResultInitial},
	1:  {"firmware updated successfully", ResultSuccess},
	2:  {"not enough flash memory for the new firmware package", ResultTerminal},
	3:  {"out of RAM during downloading process", ResultRetryable},
	4:  {"connection lost during downloading process", ResultRetryable},
	5:  {"integrity check failure for new downloaded package", ResultRetryable},
	6:  {"unsupported package type", ResultTerminal},
	7:  {"invalid URI", ResultTerminal},
	8:  {"firmware update failed", ResultTerminal},
	9:  {"unsupported protocol", ResultTerminalUnlessOtherProtocol},
	10: {"firmware update cancelled", ResultCancelled},
	11: {"firmware update deferred", ResultDeferred},
}

// Reason returns the text and class of an Update Result (/5/0/5).
func Reason(result int) (reason string, class ResultClass) {
	if result < 0 || result >= len(results) {
		return fmt.Sprintf("unknown update result %d", result), ResultUnknown
	}
	r := results[result]
	return r.reason, r.class
}
