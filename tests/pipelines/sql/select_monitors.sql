SELECT patient_id, ts, heart_rate FROM monitors
