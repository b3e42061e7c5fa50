package flows

// The uscente.morosi fields the grouping reads, by position. A row is read by many
// fields' names (the case fields, the invoice, the mora notice: about 45 lookups a
// row), and a name costs a map lookup; the layout keeps their positions once
// (Layout.mor), and the grouping reads them by position.

// morField is a uscente.morosi field, by its place in morFieldNames.
type morField uint8

const (
	mSector morField = iota
	mPOD
	mPDR
	mCF
	mPIVA
	mName
	mSwitch
	mVoltage
	mGasUse
	mAnnualSmc
	mAllLost
	mInvNumber
	mInvIssued
	mInvDue
	mInvFrom
	mInvTo
	mInvAmount
	mInvUnpaid
	mInvRAI
	mInvReading
	mInvCong
	mInvRecon
	mMoraDate
	mMoraChannel
	mMoraReceived
	mMoraTerm
	mMoraCMOR
	mMoraRef
	mClosing
	mTIF
	mComplaints
	mActive
	mVoltura
	mSpend
	mPrevious
	mPrevCP
	numMorFields
)

var morFieldNames = [numMorFields]string{
	mSector: MorSector, mPOD: MorPOD, mPDR: MorPDR, mCF: MorCF, mPIVA: MorPIVA, mName: MorName, mSwitch: MorSwitch,
	mVoltage: MorVoltage, mGasUse: MorGasUse, mAnnualSmc: MorAnnualSmc, mAllLost: MorAllLost, mInvNumber: MorInvNumber,
	mInvIssued: MorInvIssued, mInvDue: MorInvDue, mInvFrom: MorInvFrom, mInvTo: MorInvTo, mInvAmount: MorInvAmount,
	mInvUnpaid: MorInvUnpaid, mInvRAI: MorInvRAI, mInvReading: MorInvReading, mInvCong: MorInvCong, mInvRecon: MorInvRecon,
	mMoraDate: MorMoraDate, mMoraChannel: MorMoraChannel, mMoraReceived: MorMoraReceived, mMoraTerm: MorMoraTerm,
	mMoraCMOR: MorMoraCMOR, mMoraRef: MorMoraRef, mClosing: MorClosing, mTIF: MorTIF, mComplaints: MorComplaints,
	mActive: MorActive, mVoltura: MorVoltura, mSpend: MorSpend, mPrevious: MorPrevious, mPrevCP: MorPrevCP,
}

// morPositions are the positions of the uscente.morosi fields in a layout of names,
// -1 for a field it does not have.
func morPositions(index map[string]int) (pos [numMorFields]int) {
	for f, name := range morFieldNames {
		pos[f] = -1
		if i, ok := index[name]; ok {
			pos[f] = i
		}
	}
	return pos
}

// mor is Get for a uscente.morosi field, by position.
func (r Record) mor(f morField) string {
	if r.layout == nil {
		return ""
	}
	if i := r.layout.mor[f]; i >= 0 && i < len(r.Values) {
		return r.Values[i]
	}
	return ""
}

// morDate is Date for a uscente.morosi field.
func (r Record) morDate(f morField) Date {
	d, _ := ParseDate(r.mor(f))
	return d
}

// morAmount is Amount for a uscente.morosi field.
func (r Record) morAmount(f morField) Amount {
	a, _ := ParseAmount(r.mor(f), false)
	return a
}

// morFlag is Flag for a uscente.morosi field.
func (r Record) morFlag(f morField) bool {
	v := r.mor(f)
	return v == "1" || v == "S"
}
