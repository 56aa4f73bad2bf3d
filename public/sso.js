// Posts the single sign-on form at once; without JavaScript the Continue button does it.
document.getElementById('sso-form')?.submit()
