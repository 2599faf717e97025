-- wrk script: POST one patient to /predict (or /explain, same body).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- VITALFLOW_TOKEN, when set, is sent as the bearer credential.
local token = os.getenv("VITALFLOW_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.body = '{"pregnancies": 6, "glucose": 148, "blood_pressure": 72, "skin_thickness": 35, "insulin": 0, "bmi": 33.6, "diabetes_pedigree_function": 0.627, "age": 50}'

dofile("benches/http/report.lua")
